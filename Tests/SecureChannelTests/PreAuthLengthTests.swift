import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
@testable import SecureChannel
import Testing

/// A frame's length field is only trusted once its header is complete and checked: before
/// authentication, a peer that sends just a huge length (in one read or split across reads) gets
/// a closed channel, never a crash or a multi-gigabyte allocation. (Found by review: four bytes
/// `FF FF FF FF` used to trap the whole agent.)
@Suite struct PreAuthLengthTests {
    func responder() throws -> (EmbeddedChannel, SecureChannelHandler) {
        let channel = EmbeddedChannel()
        let handler = try SecureChannelHandler(role: .responder(rateLimiter: nil),
                                               configuration: SecureChannelConfiguration(credentials: Fixtures().host("server")),
                                               eventLoop: channel.eventLoop, logger: Logger(label: "test"))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, handler)
    }

    @Test(arguments: [[[0xFF, 0xFF, 0xFF, 0xFF]], [[0xFF], [0xFF, 0xFF, 0xFF]], [[0xFF, 0xFF], [0xFF, 0xFF, 0x01]],
                      [[0x80, 0x00, 0x00, 0x00], [0x01]], [[0xFF, 0xFF, 0xFF, 0xFF, 0x01]]] as [[[UInt8]]])
    func aHugeLengthFieldIsRefusedWithoutAllocating(_ reads: [[UInt8]]) throws {
        let (channel, _) = try responder()
        for bytes in reads where channel.isActive {
            _ = try? channel.writeInbound(ByteBuffer(bytes: bytes)) // a refusal closes the channel, which the loop checks
        }
        // Once the 5-byte header is in, the frame is refused and the channel closed; before
        // that, at most the few bytes received are held.
        if reads.joined().count >= 5 { #expect(!channel.isActive) }
        _ = try? channel.finish()
    }

    @Test func aListenerSurvivesAFourByteLengthAndServesTheNextClient() async throws {
        let fixtures = Fixtures()
        let server = try await EchoServer.start(fixtures.host("server"))
        let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: server.port).get()
        try await raw.writeAndFlush(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF])).get()
        try await Task.sleep(for: .milliseconds(200))
        try? await raw.close()
        // Still alive: a proper client completes a handshake.
        let client = try await SecureConnection.connect(host: "127.0.0.1", port: server.port,
                                                        configuration: SecureChannelConfiguration(credentials: fixtures.host("client")),
                                                        logger: Logger(label: "test"))
        try? await client.channel.channel.close()
        await server.stop()
    }
}

import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import SecureChannel
import Testing

/// Connections still in the handshake are capped per listener and per source prefix
/// (Protocol.md §3.3, issue 19 finding 4), and refusals are logged at most once per reason per
/// 10 s (finding 5).
@Suite(.serialized, .timeLimit(.minutes(1))) struct HandshakeAdmissionTests {
    let f = Fixtures()

    @Test func prefixesAreTheSlash24AndTheSlash64() throws {
        func prefix(_ ip: String) throws -> SourcePrefix { SourcePrefix(try SocketAddress(ipAddress: ip, port: 1)) }
        #expect(try prefix("10.1.2.3") == prefix("10.1.2.250"))
        #expect(try prefix("10.1.2.3") != prefix("10.1.3.3"))
        #expect(try prefix("10.1.2.3").description == "10.1.2.0/24")
        #expect(try prefix("2001:db8:1:2::1") == prefix("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        #expect(try prefix("2001:db8:1:2::1") != prefix("2001:db8:1:3::1"))
        #expect(try prefix("2001:db8:1:2::1").description == "2001:db8:1:2::/64")
    }

    @Test func theCapsCountPerPrefixAndPerListenerAndAreReleased() throws {
        var admission = HandshakeAdmission(maxPerListener: 5, maxPerPrefix: 3)
        let a = SourcePrefix(try SocketAddress(ipAddress: "10.0.0.1", port: 1))
        let b = SourcePrefix(try SocketAddress(ipAddress: "10.0.1.1", port: 1))
        let c = SourcePrefix(try SocketAddress(ipAddress: "10.0.2.1", port: 1))
        for _ in 0..<3 { #expect(admission.admit(a) == nil) }
        #expect(admission.admit(a) == .prefixFull(a))
        for _ in 0..<2 { #expect(admission.admit(b) == nil) }
        #expect(admission.admit(c) == .listenerFull)
        admission.release(a)
        #expect(admission.admit(c) == nil)
        #expect(admission.inHandshake == 5)
    }

    /// A real listener with a cap of 4 per prefix: the fifth idle connection from 127.0.0.1 is
    /// closed unread while the first four are left alone; once they go, a real client gets in.
    @Test func aListenerClosesConnectionsPastThePrefixCapUnread() async throws {
        let admission = SharedHandshakeAdmission(HandshakeAdmission(maxPerListener: 100, maxPerPrefix: 4))
        let listener = try await SecureChannelListener.bind(host: "127.0.0.1", port: 0, configuration: SecureChannelConfiguration(credentials: f.host("server")),
                                                            admission: admission, logger: testLogger)
        let server = Task { try await listener.run { _ in } }
        defer { server.cancel() }
        let port = listener.localAddress!.port!
        var idle: [any Channel] = []
        for n in 1...4 {
            idle.append(try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get())
            // Children are set up on several event loops: wait until this one is admitted, so
            // the fifth is the one past the cap.
            for _ in 0..<500 where admission.inHandshake < n { try await Task.sleep(for: .milliseconds(10)) }
        }
        let fifth = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        // Bounded wait (a hang detector, not a timing assertion): the server closes it.
        let closed = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await fifth.closeFuture.get()) != nil }
            group.addTask { try? await Task.sleep(for: .seconds(5)); return false }
            defer { group.cancelAll() }
            return await group.next()!
        }
        #expect(closed, "the fifth connection from one /24 must be closed")
        let stillOpen = idle.filter { $0.isActive }.count
        #expect(stillOpen == 4, "the four admitted connections stay")
        for channel in idle { try? await channel.close() }
        for _ in 0..<200 where admission.inHandshake > 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(admission.inHandshake == 0, "closed handshakes free their places")
        let client = try await SecureConnection.connect(host: "127.0.0.1", port: port,
                                                        configuration: SecureChannelConfiguration(credentials: f.host("client")), logger: testLogger)
        try? await client.channel.channel.close()
        await listener.close()
    }

    /// 100 connections that send an unknown frame type are each refused; the log gets one
    /// line for them (per reason per 10 s), not a hundred.
    @Test func manyRefusedConnectionsLogABoundedNumberOfLines() async throws {
        let lines = LineCounter()
        var logger = Logger(label: "refusals") { _ in CountingLogHandler(lines: lines) }
        logger.logLevel = .debug
        let refusals = NIOLockedValueBox(0)
        let listener = try await SecureChannelListener.bind(host: "127.0.0.1", port: 0, configuration: SecureChannelConfiguration(credentials: f.host("server")),
                                                            logger: logger)
        let server = Task { try await listener.run(onRefusal: { _, _ in refusals.withLockedValue { $0 += 1 } }) { _ in } }
        defer { server.cancel() }
        let port = listener.localAddress!.port!
        for _ in 0..<100 {
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            try? await client.writeAndFlush(ByteBuffer(bytes: [0, 0, 0, 1, 0x7F])).get()
            try? await client.closeFuture.get()
        }
        for _ in 0..<500 where refusals.withLockedValue({ $0 }) < 100 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(refusals.withLockedValue { $0 } == 100)
        let logged = lines.count(containing: "refused secure channel")
        #expect(logged >= 1 && logged <= 2, "\(logged) refusal lines for 100 refusals")
        await listener.close()
    }
}

/// Counts log lines by message.
final class LineCounter: Sendable {
    private let messages = NIOLockedValueBox<[String]>([])
    func append(_ message: String) { messages.withLockedValue { $0.append(message) } }
    func count(containing text: String) -> Int { messages.withLockedValue { $0.filter { $0.contains(text) }.count } }
}

struct CountingLogHandler: LogHandler {
    let lines: LineCounter
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        lines.append(event.message.description)
    }
}

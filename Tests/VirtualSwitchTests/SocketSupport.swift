import Foundation
import MeshCrypto
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import VirtualSwitch

/// A stand-in for a QEMU NIC: a unix datagram socket bound at the VM's path that sends to the
/// switch's path and collects what the switch sends.
final class FakeNIC: Sendable {
    let channel: any Channel
    let switchAddress: SocketAddress
    private let inbox: Inbox

    /// Frames received so far.
    final class Inbox: Sendable {
        let frames = Mutex<[ByteBuffer]>([])
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let inbox: Inbox
        init(inbox: Inbox) { self.inbox = inbox }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data).data
            inbox.frames.withLock { $0.append(frame) }
        }
    }

    init(vmPath: String, switchPath: String) async throws {
        switchAddress = try SocketAddress(unixDomainSocketPath: switchPath)
        let inbox = Inbox()
        self.inbox = inbox
        channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(inbox: inbox))
                }
            }
            .bind(unixDomainSocketPath: vmPath, cleanupExistingSocketFile: true).get()
    }

    func send(_ frame: ByteBuffer) async throws {
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: switchAddress, data: frame))
    }

    var frames: [ByteBuffer] { inbox.frames.withLock { $0 } }

    func close() async { try? await channel.close() }
}

/// A bare UDP socket for sending hand-made overlay datagrams.
final class RawUDP: Sendable {
    let channel: any Channel

    init() async throws {
        channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
    }

    func send(_ datagram: ByteBuffer, to address: SocketAddress) async throws {
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: datagram))
    }

    func close() async { try? await channel.close() }
}

/// Relays `publish` events of each switch to the others' `applyLocations` (what the agents'
/// gossip does), until cancelled.
func relayLocations(among switches: [VirtualSwitch]) -> Task<Void, Never> {
    Task {
        await withTaskGroup(of: Void.self) { group in
            for (index, source) in switches.enumerated() {
                let others = switches.enumerated().filter { $0.offset != index }.map(\.element)
                group.addTask {
                    for await event in source.events {
                        if case let .publish(locations) = event {
                            for other in others { await other.applyLocations(locations) }
                        }
                    }
                }
            }
        }
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// A fresh short temporary directory (unix socket paths are limited to 107 bytes).
func temporaryDirectory() -> String {
    var template = Array("/tmp/hmvs-XXXXXX".utf8CString)
    return String(cString: mkdtemp(&template)!)
}

/// `value`, or a recorded failure (a `#require` that works on mutating calls' results).
func unwrap<T>(_ value: T?, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    try #require(value, sourceLocation: sourceLocation)
}

/// Random shared secrets for overlay keys.
enum MeshCryptoSupport {
    static func randomSecret() -> SecretBytes { SecretBytes(randomCount: 32) }
}

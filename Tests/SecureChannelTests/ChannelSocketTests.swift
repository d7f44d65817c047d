import Logging
import MeshCrypto
import MeshIdentity
import NIOCore
import NIOPosix
@testable import SecureChannel
import Testing

/// What the server side of a test saw.
actor ServerLog {
    var peers: [String] = []
    var messages: [String] = []
    var errors: [SecureChannelError] = []
    func peer(_ p: String) { peers.append(p) }
    func message(_ m: String) { messages.append(m) }
    func error(_ e: any Error) { if let e = e as? SecureChannelError { errors.append(e) } else { errors.append(SecureChannelError(.internalError, "\(e)")) } }

    /// Waits (bounded) until `condition` holds.
    func waitFor(_ condition: @Sendable (isolated ServerLog) -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition(self) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }
}

/// A listener that echoes every message back and records what it saw.
struct EchoServer {
    let listener: SecureChannelListener
    let task: Task<Void, any Error>
    let log: ServerLog
    var port: Int { listener.localAddress!.port! }

    static func start(_ credentials: ChannelCredentials, policy: ChannelPolicy = ChannelPolicy(),
                      handshakeTimeout: TimeAmount = .seconds(10)) async throws -> EchoServer {
        let config = SecureChannelConfiguration(credentials: credentials, policy: policy, handshakeTimeout: handshakeTimeout)
        let listener = try await SecureChannelListener.bind(host: "127.0.0.1", port: 0, configuration: config, logger: testLogger)
        let log = ServerLog()
        let task = Task {
            try await listener.run(onRefusal: { error, _ in Task { await log.error(error) } }) { connection in
                await log.peer(connection.peer.hostID)
                do {
                    try await connection.channel.executeThenClose { inbound, outbound in
                        for try await bytes in inbound {
                            await log.message(String(buffer: bytes))
                            // A failed echo must not stop us from reading what already arrived.
                            try? await outbound.write(bytes)
                        }
                    }
                } catch { await log.error(await connection.failureReason() ?? error) }
            }
        }
        return EchoServer(listener: listener, task: task, log: log)
    }

    func stop() async {
        task.cancel()
        await listener.close()
    }
}

@Suite(.timeLimit(.minutes(1))) struct ChannelSocketTests {
    let f = Fixtures()

    func connect(_ credentials: ChannelCredentials, port: Int, policy: ChannelPolicy = ChannelPolicy()) async throws -> SecureConnection {
        try await SecureConnection.connect(host: "127.0.0.1", port: port,
                                           configuration: SecureChannelConfiguration(credentials: credentials, policy: policy), logger: testLogger)
    }

    @Test func authenticatedEchoOverLoopback() async throws {
        let server = try await EchoServer.start(f.host("node-b"))
        defer { Task { await server.stop() } }
        let connection = try await connect(f.host("node-a"), port: server.port, policy: ChannelPolicy(expectedPeer: "node-b"))
        #expect(connection.peer.hostID == "node-b" && connection.peer.domain == "lab")
        let echoed = try await connection.channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "hello over noise"))
            var it = inbound.makeAsyncIterator()
            return try await it.next().map { String(buffer: $0) }
        }
        #expect(echoed == "hello over noise")
        #expect(await server.log.peers == ["node-a"])
    }

    /// Refusals: the client's connect fails with the reason and the server logs the same reason.
    @Test(arguments: [
        ("expired", CloseCode.certificateExpired),
        ("untrusted", CloseCode.unknownIssuer),
        ("wrong-domain", CloseCode.wrongDomain),
    ])
    func refusedClientsLearnWhyAndTheServerLogsIt(case name: String, expected: CloseCode) async throws {
        let serverCredentials = f.host("node-b", trusting: [f.lab, f.prod])
        let policy = name == "wrong-domain" ? ChannelPolicy(requiredDomain: "lab") : ChannelPolicy()
        let server = try await EchoServer.start(serverCredentials, policy: policy)
        defer { Task { await server.stop() } }
        let client: ChannelCredentials
        switch name {
        case "expired": client = f.host("node-a", notAfter: f.now - 5)
        case "untrusted": client = f.host("node-a", domain: try DomainAuthority(name: "lab"), trusting: [f.lab])
        default: client = f.host("node-a", domain: f.prod, trusting: [f.lab, f.prod])
        }
        await #expect {
            _ = try await connect(client, port: server.port, policy: ChannelPolicy(targetDomain: f.lab.trustAnchor))
        } throws: { error in
            (error as? SecureChannelError)?.code == expected && (error as? SecureChannelError)?.byPeer == true
        }
        #expect(await server.log.waitFor { $0.errors.contains { $0.code == expected } })
        #expect(await server.log.peers.isEmpty)
    }

    @Test func clientRefusesAnUnexpectedOrUntrustedServer() async throws {
        let server = try await EchoServer.start(f.host("node-b", notAfter: f.now - 5))
        defer { Task { await server.stop() } }
        await #expect { _ = try await connect(f.host("node-a"), port: server.port) } throws: {
            ($0 as? SecureChannelError)?.code == .certificateExpired
        }
        // The server hears the client's refusal (a Reject frame).
        #expect(await server.log.waitFor { $0.errors.contains { $0.code == .certificateExpired && $0.byPeer } })
        let good = try await EchoServer.start(f.host("node-b"))
        defer { Task { await good.stop() } }
        await #expect { _ = try await connect(f.host("node-a"), port: good.port, policy: ChannelPolicy(expectedPeer: "node-c")) } throws: {
            ($0 as? SecureChannelError)?.code == .unexpectedPeer
        }
    }

    @Test func garbageAndSilenceCostLittleAndEndCleanly() async throws {
        let server = try await EchoServer.start(f.host("node-b"), handshakeTimeout: .milliseconds(300))
        defer { Task { await server.stop() } }
        // Garbage: a frame with a wrong MAC, and random bytes.
        for payload in [[0, 0, 0, 60, 1] + [UInt8](repeating: 7, count: 59), [0xde, 0xad, 0xbe, 0xef, 0x99, 1, 2, 3]] {
            let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: server.port) { ch in
                ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
            }
            let reply = try await raw.executeThenClose { inbound, outbound in
                // The server may close before this write lands (it needs only the header): fine.
                try? await outbound.write(ByteBuffer(bytes: payload))
                var all = ByteBuffer()
                for try await var chunk in inbound { all.writeBuffer(&chunk) }
                return all
            }
            // The server answered with a Reject frame and closed.
            #expect(reply.getInteger(at: 4, as: UInt8.self) == FrameType.reject.rawValue)
        }
        // Silence: a connection that never speaks is closed at the handshake timeout.
        let silent = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: server.port) { ch in
            ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
        }
        try await silent.executeThenClose { inbound, _ in for try await _ in inbound {} }
        let seen = await server.log.waitFor { log in
            [CloseCode.unknownDomain, .protocolViolation, .handshakeTimeout].allSatisfy { code in log.errors.contains { $0.code == code } }
        }
        let errors = await server.log.errors
        #expect(seen, "server saw \(errors)")
    }

    /// An attacker between the hosts: each manipulation is detected by the receiver, which
    /// closes the channel with the matching reason; nothing after the manipulation is delivered.
    @Test(arguments: [
        (FrameProxy.Attack.tamper(1), CloseCode.recordAuthenticationFailed),
        (.replay(1), .recordOutOfOrder),
        (.reorder(1), .recordOutOfOrder),
        (.truncate(2), .truncated),
    ])
    func manInTheMiddleIsDetected(attack: FrameProxy.Attack, expected: CloseCode) async throws {
        let server = try await EchoServer.start(f.host("node-b"))
        defer { Task { await server.stop() } }
        let (proxy, proxyTask) = try await FrameProxy.start(targetPort: server.port, attack: attack)
        defer { proxyTask.cancel() }
        let connection = try await connect(f.host("node-a"), port: proxy.port)
        let clientOutcome: SecureChannelError? = await {
            do {
                try await connection.channel.executeThenClose { inbound, outbound in
                    for i in 0..<4 { try await outbound.write(ByteBuffer(string: "m\(i)")) }
                    for try await _ in inbound {}
                }
                return nil
            } catch { return error as? SecureChannelError }
        }()
        let seen = await server.log.waitFor { $0.errors.contains { $0.code == expected } }
        let (errors, messages) = (await server.log.errors, await server.log.messages)
        #expect(seen, "server saw \(errors), messages \(messages)")
        // Records before the manipulated one arrive intact; nothing after it is delivered.
        let intact: [String] = switch attack {
        case .replay(let n), .truncate(let n): (0..<(attack.isReplay ? n + 1 : n)).map { "m\($0)" }
        case .tamper(let n), .reorder(let n): (0..<n).map { "m\($0)" }
        case .none: []
        }
        #expect(await server.log.messages == intact)
        #expect(clientOutcome != nil) // the client learns the channel failed
    }

    @Test func largeTransfersRekeyWithoutInterruption() async throws {
        let serverCredentials = f.host("node-b")
        let config = SecureChannelConfiguration(credentials: serverCredentials, rekeyAfterBytes: 100_000)
        let listener = try await SecureChannelListener.bind(host: "127.0.0.1", port: 0, configuration: config, logger: testLogger)
        let task = Task {
            try await listener.run { connection in
                try? await connection.channel.executeThenClose { inbound, outbound in
                    for try await bytes in inbound { try await outbound.write(bytes) }
                }
            }
        }
        defer { task.cancel(); Task { await listener.close() } }
        let client = SecureChannelConfiguration(credentials: f.host("node-a"), rekeyAfterBytes: 64_000)
        let connection = try await SecureConnection.connect(host: "127.0.0.1", port: listener.localAddress!.port!, configuration: client, logger: testLogger)
        let total = 3_000_000
        let received = try await connection.channel.executeThenClose { inbound, outbound in
            async let sent: Void = {
                var offset = 0
                while offset < total {
                    let n = min(100_000, total - offset)
                    try await outbound.write(ByteBuffer(bytes: (offset..<(offset + n)).map { UInt8(truncatingIfNeeded: $0 &* 7) }))
                    offset += n
                }
            }()
            var got = [UInt8](); got.reserveCapacity(total)
            for try await bytes in inbound {
                got += bytes.readableBytesView
                if got.count >= total { break }
            }
            try await sent
            return got
        }
        #expect(received.count == total)
        #expect(received == (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 7) })
    }
}

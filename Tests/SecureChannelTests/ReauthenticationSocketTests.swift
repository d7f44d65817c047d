import Foundation
import MeshCrypto
import MeshIdentity
import NIOCore
import NIOPosix
@testable import SecureChannel
import Testing

/// Collects values handed to a callback, in order.
final class Collector<T: Sendable>: @unchecked Sendable { // `stored` is read and written only under `lock`
    private let lock = NSLock()
    private var stored: [T] = []
    func append(_ item: T) { lock.withLock { stored.append(item) } }
    var items: [T] { lock.withLock { stored } }
}

/// In-place re-authentication on real sockets (Protocol.md §3.9): a host rotates while its
/// channels carry data, the channels go on with the new key; bad re-authentications are refused
/// by name on both ends; an old key is refused once its grace period is over.
@Suite(.timeLimit(.minutes(1))) struct ReauthenticationSocketTests {
    let f = Fixtures()

    /// node-b's rotation: a new identity, its certificate and the record signed by both keys.
    func rotation(of credentials: ChannelCredentials, serial: UInt64 = 2) throws -> KeyRotationNotice {
        let new = try HostIdentity(hostID: credentials.identity.hostID)
        let certificate = f.lab.certify(new.publicKeys, serial: serial, notBefore: f.now - 3600, notAfter: f.now + 3600)
        return KeyRotationNotice(identity: new, certificate: certificate,
                                 record: RotationRecord(from: credentials.identity, to: new, domain: "lab", now: f.now))
    }

    func connect(_ credentials: ChannelCredentials, port: Int, observer: (@Sendable (ReauthenticationEvent) -> Void)? = nil) async throws -> SecureConnection {
        var configuration = SecureChannelConfiguration(credentials: credentials, policy: ChannelPolicy(expectedPeer: "node-a"))
        configuration.observer = observer
        return try await SecureConnection.connect(host: "127.0.0.1", port: port, configuration: configuration, logger: testLogger)
    }

    /// An echo listener of node-a whose channels report re-authentications to `events`.
    func server(_ credentials: ChannelCredentials, events: Collector<ReauthenticationEvent>) async throws -> (SecureChannelListener, Task<Void, any Error>, ServerLog) {
        var configuration = SecureChannelConfiguration(credentials: credentials)
        configuration.observer = { events.append($0) }
        let listener = try await SecureChannelListener.bind(host: "127.0.0.1", port: 0, configuration: configuration, logger: testLogger)
        let log = ServerLog()
        let task = Task {
            try await listener.run { connection in
                do {
                    try await connection.channel.executeThenClose { inbound, outbound in
                        for try await bytes in inbound { try await outbound.write(bytes) }
                    }
                } catch { await log.error(await connection.failureReason() ?? error) }
            }
        }
        return (listener, task, log)
    }

    @Test func aHostRotatesMidStreamAndTheChannelGoesOnWithTheNewKey() async throws {
        let a = f.host("node-a")
        let b = f.host("node-b")
        let serverEvents = Collector<ReauthenticationEvent>()
        let (listener, task, log) = try await server(a, events: serverEvents)
        defer { task.cancel(); Task { await listener.close() } }
        let clientEvents = Collector<ReauthenticationEvent>()
        let connection = try await connect(b, port: listener.localAddress!.port!) { clientEvents.append($0) }
        let rotation = try rotation(of: b)
        let oldKey = b.identity.signingKey.publicKey
        let total = 4_000_000
        let pattern: @Sendable (Int) -> UInt8 = { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let received = try await connection.channel.executeThenClose { inbound, outbound in
            async let sent: Void = {
                var offset = 0
                while offset < total {
                    let n = min(100_000, total - offset)
                    try await outbound.write(ByteBuffer(bytes: (offset..<(offset + n)).map(pattern)))
                    offset += n
                    // Half-way through, node-b's host rotates: every channel of these credentials re-authenticates.
                    if offset == total / 2 { #expect(b.replace(identity: rotation.identity, certificate: rotation.certificate, record: rotation.record)) }
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
        #expect(received.count == total && received == (0..<total).map(pattern)) // nothing lost, nothing reordered
        // One announcement by node-b, accepted by node-a on the same channel (no new handshake).
        #expect(clientEvents.items.count == 1)
        guard case .announced(1, let key) = clientEvents.items.first else { Issue.record("no announcement: \(clientEvents.items)"); return }
        #expect(key == rotation.identity.signingKey.publicKey)
        _ = await log.waitFor { _ in serverEvents.items.count == 1 }
        guard case .accepted(let accepted) = serverEvents.items.first else { Issue.record("not accepted: \(serverEvents.items)"); return }
        #expect([UInt8](accepted.previous.body.identityKey) == oldKey.bytes)
        #expect(accepted.current == rotation.certificate && accepted.sequence == 1)
        let serverErrors = await log.errors
        #expect(serverErrors.isEmpty, "\(serverErrors)")
        // The old key is retired in node-a's registry, still in its grace period (1 hour by default).
        let retired = a.trust.retiredKeys.retirement(hostID: "node-b", key: oldKey)
        #expect(retired != nil && retired!.refusedFrom >= f.now + 3_000)
    }

    @Test func aChannelLeftOnTheOldKeyIsClosedAfterTheGracePeriodAndTheOldKeyIsRefused() async throws {
        let a = f.host("node-a")
        a.trust.retiredKeys.graceSeconds = 0
        let b = f.host("node-b")
        let (listener, task, log) = try await server(a, events: Collector())
        defer { task.cancel(); Task { await listener.close() } }
        let port = listener.localAddress!.port!
        let old = b.snapshot() // frozen at the old key: its channels never re-authenticate
        let following = try await connect(b, port: port)
        let stale = try await connect(old, port: port)
        let rotation = try rotation(of: b)
        #expect(b.replace(identity: rotation.identity, certificate: rotation.certificate, record: rotation.record))
        // node-a closes the channel still on the old key, code 31, and node-b hears why.
        let staleError: SecureChannelError? = await {
            do {
                try await stale.channel.executeThenClose { inbound, _ in for try await _ in inbound {} }
                return await stale.failureReason()
            } catch { return await stale.failureReason() ?? (error as? SecureChannelError) }
        }()
        #expect(staleError?.code == .keyRetired && staleError?.byPeer == true, "\(String(describing: staleError))")
        let sawRetired = await log.waitFor { $0.errors.contains { $0.code == .keyRetired } }
        let retiredErrors = await log.errors
        #expect(sawRetired, "\(retiredErrors)")
        // A new handshake with the old key: refused, naming it.
        do {
            _ = try await connect(old, port: port)
            Issue.record("the retired key was accepted after its grace period")
        } catch let error as SecureChannelError {
            #expect(error.code == .keyRetired && error.detail.contains("rotated away"), "\(error)")
        }
        // The channel that re-authenticated goes on.
        let echoed = try await following.channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "still here"))
            var it = inbound.makeAsyncIterator()
            return try await it.next().map { String(buffer: $0) }
        }
        #expect(echoed == "still here")
    }

    enum Bad: String, CaseIterable, Sendable { case wrongSignature, wrongHandshakeHash, replay, otherHostID }

    @Test(arguments: Bad.allCases)
    func aBadReauthenticationIsRefusedByNameOnBothEnds(_ bad: Bad) async throws {
        let a = f.host("node-a")
        let b = f.host("node-b")
        let (listener, task, log) = try await server(a, events: Collector())
        defer { task.cancel(); Task { await listener.close() } }
        let connection = try await connect(b, port: listener.localAddress!.port!)
        let binding = connection.session.channelBinding
        var rotation = try rotation(of: b)
        var contents: [[UInt8]] = []
        let expected: String
        switch bad {
        case .wrongSignature:
            rotation = KeyRotationNotice(identity: b.identity, certificate: rotation.certificate, record: rotation.record) // signed by the old key
            contents = [ChannelReauthentication.message(binding: binding, fromInitiator: true, sequence: 1, rotation: rotation)]
            expected = "signature does not verify"
        case .wrongHandshakeHash:
            contents = [ChannelReauthentication.message(binding: binding.map { $0 ^ 1 }, fromInitiator: true, sequence: 1, rotation: rotation)]
            expected = "another channel's handshake hash"
        case .replay:
            let valid = ChannelReauthentication.message(binding: binding, fromInitiator: true, sequence: 1, rotation: rotation)
            contents = [valid, valid]
            expected = "replayed"
        case .otherHostID:
            let other = try HostIdentity(hostID: "node-c")
            rotation = KeyRotationNotice(identity: other, certificate: f.lab.certify(other.publicKeys, serial: 7, notBefore: f.now - 60, notAfter: f.now + 3600),
                                         record: RotationRecord(from: b.identity, to: other, domain: "lab", now: f.now))
            contents = [ChannelReauthentication.message(binding: binding, fromInitiator: true, sequence: 1, rotation: rotation)]
            expected = "for host node-c, but the channel authenticated node-b"
        }
        for content in contents {
            try await connection.channel.channel.triggerUserOutboundEvent(UncheckedReauthenticationRecord(content: content)).get()
        }
        // The receiver refuses (code 30, naming the check) and the sender hears the same reason.
        let senderError: SecureChannelError? = await {
            do {
                try await connection.channel.executeThenClose { inbound, _ in for try await _ in inbound {} }
                return await connection.failureReason()
            } catch { return await connection.failureReason() ?? (error as? SecureChannelError) }
        }()
        #expect(senderError?.code == .reauthenticationRefused && senderError?.byPeer == true && senderError?.detail.contains(expected) == true,
                "\(String(describing: senderError))")
        let sawRefusal = await log.waitFor { $0.errors.contains { $0.code == .reauthenticationRefused && $0.detail.contains(expected) && !$0.byPeer } }
        let refusalErrors = await log.errors
        #expect(sawRefusal, "\(refusalErrors)")
        // The listener is unharmed: a fresh channel works.
        let fresh = try await connect(f.host("node-d"), port: listener.localAddress!.port!)
        try? await fresh.channel.channel.close() // only the handshake was needed
    }
}

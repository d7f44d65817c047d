@testable import MigrationService
import SecureChannel
import Testing

/// Who may open which stream of an incoming migration (Protocol.md §6.3, §6.7).
@Suite struct StreamAuthorizationTests {
    let withDisks = StreamAuthorization(source: "node-a", migrationSocket: "/run/vm/incoming.sock", nbdSocket: "/run/vm/nbd.sock")
    let withoutDisks = StreamAuthorization(source: "node-a", migrationSocket: "/run/vm/incoming.sock", nbdSocket: nil)

    func refusal(_ admitted: StreamAuthorization?, purpose: String, peer: String) -> SecureChannelError? {
        do {
            _ = try StreamAuthorization.socket(admitted, migration: "m", purpose: purpose, peer: peer)
            return nil
        } catch {
            return error as? SecureChannelError
        }
    }

    @Test func eachPurposeGoesToItsOwnSocketFromTheAdmittedSourceOnly() throws {
        #expect(try StreamAuthorization.socket(withDisks, migration: "m", purpose: "migration-stream", peer: "node-a") == "/run/vm/incoming.sock")
        #expect(try StreamAuthorization.socket(withDisks, migration: "m", purpose: "nbd-stream", peer: "node-a") == "/run/vm/nbd.sock")
        // Another host of the domain, even one that could dial in, reaches neither.
        #expect(refusal(withDisks, purpose: "nbd-stream", peer: "node-c")?.code == .unexpectedPeer)
        #expect(refusal(withDisks, purpose: "migration-stream", peer: "node-c")?.code == .unexpectedPeer)
        // No disks admitted: no NBD stream. Nothing admitted: no stream at all. Unknown purpose: refused.
        #expect(refusal(withoutDisks, purpose: "nbd-stream", peer: "node-a")?.code == .protocolViolation)
        #expect(refusal(nil, purpose: "nbd-stream", peer: "node-a")?.code == .protocolViolation)
        #expect(refusal(withDisks, purpose: "control", peer: "node-a")?.code == .protocolViolation)
    }
}

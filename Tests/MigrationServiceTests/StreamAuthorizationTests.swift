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

/// Peers of other domains are named `host@domain` (Protocol.md §6.10): a host id repeated across
/// domains never lets one host pass for the other.
@Suite struct PeerNameTests {
    @Test func aHostOfAnotherDomainIsNamedWithItsDomainAndSplitsBack() {
        #expect(PeerName.qualified(host: "node-1", domain: "prod") == "node-1@prod")
        #expect(PeerName.split("node-1@prod") == ("node-1", "prod"))
        #expect(PeerName.split("node-1") == ("node-1", nil))
        #expect(PeerName.isCrossDomain("node-1@prod") && !PeerName.isCrossDomain("node-1"))
    }

    @Test func aMigrationAdmittedFromAnotherDomainTakesNoStreamFromTheLocalHostOfTheSameID() throws {
        let fromProd = StreamAuthorization(source: "node-1@prod", migrationSocket: "/run/vm/incoming.sock", nbdSocket: "/run/vm/nbd.sock")
        #expect(try StreamAuthorization.socket(fromProd, migration: "m", purpose: "migration-stream", peer: "node-1@prod") == "/run/vm/incoming.sock")
        for purpose in ["migration-stream", "nbd-stream"] {
            #expect(throws: SecureChannelError.self) { try StreamAuthorization.socket(fromProd, migration: "m", purpose: purpose, peer: "node-1") }
        }
        // And the other way round: admitted from this domain's node-1, prod's node-1 gets nothing.
        let local = StreamAuthorization(source: "node-1", migrationSocket: "/run/vm/incoming.sock", nbdSocket: nil)
        #expect(throws: SecureChannelError.self) { try StreamAuthorization.socket(local, migration: "m", purpose: "migration-stream", peer: "node-1@prod") }
    }
}

import Foundation
import MeshCrypto
import MeshIdentity
import MeshWire
import NIOConcurrencyHelpers
import Testing

/// Revocation lists (Protocol.md §2.5): signed by the domain key, versioned, checked at every
/// certificate verification; bad lists refused with a reason that names what is wrong.
@Suite struct RevocationListTests {
    let domain = try! DomainAuthority(name: "lab")
    let now: Int64 = 1_800_000_000

    func certificate(_ host: String, serial: UInt64, by authority: DomainAuthority? = nil) throws -> HostCertificate {
        let identity = try HostIdentity(hostID: host)
        return (authority ?? domain).certify(identity.publicKeys, serial: serial, notBefore: now - 60, notAfter: now + 86_400)
    }

    @Test func aRevokedHostIsRefusedByEveryCopyOfTheTrustStoreAndOthersStillPass() throws {
        let trust = TrustStore(anchors: [domain.trustAnchor])
        let copy = trust // a value copy: the registry is shared
        let victim = try certificate("node-3", serial: 3), other = try certificate("node-4", serial: 4)
        try trust.verify(victim, now: now)
        let list = try domain.revoke(.host("node-3"), reason: "disk stolen", after: nil, now: now)
        try trust.verify(list)
        #expect(trust.revocations.install(list).outcome == .installed)
        #expect(throws: IdentityError.revoked(hostID: "node-3", serial: 3, domain: "lab", entry: "host node-3 (disk stolen)")) {
            try copy.verify(victim, now: now)
        }
        // A new certificate for the same host id is refused too; other hosts pass.
        #expect(throws: IdentityError.self) { try copy.verify(try certificate("node-3", serial: 9), now: now) }
        try copy.verify(other, now: now)
    }

    @Test func aSerialRevocationRefusesThatCertificateOnly() throws {
        let trust = TrustStore(anchors: [domain.trustAnchor])
        let list = try domain.revoke(.serial(7), reason: "", after: nil, now: now)
        trust.revocations.install(list)
        #expect(throws: IdentityError.self) { try trust.verify(try certificate("node-7", serial: 7), now: now) }
        try trust.verify(try certificate("node-7", serial: 8), now: now) // re-certified: accepted
    }

    @Test func versionsOnlyGrowAndEachKeepsTheEarlierEntries() throws {
        let registry = RevocationRegistry()
        let v1 = try domain.revoke(.host("a"), reason: "one", after: nil, now: now)
        let v2 = try domain.revoke(.serial(42), reason: "two", after: v1, now: now + 1)
        #expect(v2.version == 2 && v2.entries.count == 2)
        #expect(registry.install(v2).outcome == .installed)
        #expect(registry.install(v1).outcome == .stale(held: 2))
        #expect(registry.install(v2).outcome == .stale(held: 2))
        #expect(registry.current.version(of: "lab") == 2)
        #expect(throws: IdentityError.self) { try domain.revoke(.host("a"), reason: "again", after: v2, now: now) }
    }

    @Test func aListNotSignedByTheDomainKeyIsRefusedNamingTheKey() throws {
        let trust = TrustStore(anchors: [domain.trustAnchor])
        // An impostor signs a list in this domain's name with its own key.
        let impostor = try DomainAuthority(name: "lab")
        let forged = try impostor.revoke(.host("node-1"), reason: "", after: nil, now: now)
        #expect { try trust.verify(forged) } throws: { error in
            "\(error)".contains("not the domain key of \"lab\"") && "\(error)".contains(impostor.signingKey.publicKey.fingerprint)
        }
        // A list for a domain this host does not trust.
        let elsewhere = try DomainAuthority(name: "elsewhere").revoke(.host("x"), reason: "", after: nil, now: now)
        #expect { try trust.verify(elsewhere) } throws: { "\($0)".contains("which this host does not trust") }
        // The domain's own list with one byte of its body changed.
        let genuine = try domain.revoke(.host("node-1"), reason: "stolen", after: nil, now: now)
        var wire = try Hostmesh_V1_RevocationList(serializedBytes: genuine.serialized)
        var body = [UInt8](wire.body)
        body[body.count - 1] ^= 0x01
        wire.body = Data(body)
        let tampered = try RevocationList(serialized: [UInt8](try wire.serializedData()))
        #expect { try trust.verify(tampered) } throws: { "\($0)".contains("signature does not verify") }
    }

    @Test func malformedListsAreRefusedWithTheReasonNeverACrash() throws {
        func refusal(_ bytes: [UInt8]) -> String {
            do { _ = try RevocationList(serialized: bytes); return "accepted" } catch { return "\(error)" }
        }
        #expect(refusal([0xFF, 0xFF, 0xFF]).contains("does not decode"))
        var body = Hostmesh_V1_RevocationListBody()
        body.format = 2
        var wire = Hostmesh_V1_RevocationList()
        wire.body = try body.serializedData()
        #expect(refusal([UInt8](try wire.serializedData())).contains("format 2"))
        body.format = 1
        body.domain = "lab"
        body.issuerKey = Data(repeating: 1, count: 32)
        body.version = 1
        body.entries = [Hostmesh_V1_RevocationEntry()]
        wire.body = try body.serializedData()
        wire.signature = Data(repeating: 0, count: 64)
        #expect(refusal([UInt8](try wire.serializedData())).contains("neither a host id nor a serial"))
        #expect(throws: IdentityError.self) { try DomainAuthority.RevocationTarget(parsing: "Not A Host") }
        #expect(try DomainAuthority.RevocationTarget(parsing: "12") == .serial(12))
        #expect(try DomainAuthority.RevocationTarget(parsing: "node-12") == .host("node-12"))
    }

    @Test func installingAListCallsTheWatchersOfTheHostsItRevokesOnce() throws {
        let registry = RevocationRegistry()
        let fired = NIOLockedValueBox<[String]>([])
        let victim = try certificate("node-3", serial: 3), other = try certificate("node-4", serial: 4)
        let token = registry.watch(victim) { entry in fired.withLockedValue { $0.append(entry.summary) } }
        _ = registry.watch(other) { entry in fired.withLockedValue { $0.append("wrong: " + entry.summary) } }
        #expect(token != nil && registry.watchedCount == 2)
        let v1 = try domain.revoke(.serial(3), reason: "leaked", after: nil, now: now)
        let result = registry.install(v1)
        #expect(result.cut.map(\.hostID) == ["node-3"])
        #expect(fired.withLockedValue { $0 } == ["certificate serial 3 (leaked)"])
        #expect(registry.watchedCount == 1)
        // Already revoked: not watched; the caller refuses the channel instead.
        #expect(registry.watch(victim) { _ in } == nil)
        // A file round trip keeps the signed bytes.
        let dir = TempDir()
        try v1.save(dir.path + "/domain.revocations")
        #expect(try RevocationList.load(dir.path + "/domain.revocations") == v1)
    }
}

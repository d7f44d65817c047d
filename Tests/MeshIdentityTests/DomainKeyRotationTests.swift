import Foundation
import MeshCrypto
@testable import MeshIdentity
import MeshWire
import Testing

/// Domain key rotation (Protocol.md §2.10), pure: the record, and the anchors in force through a
/// rotation's overlap and its retirement.
@Suite struct DomainKeyRotationTests {
    let old = try! DomainAuthority(name: "lab")
    let new = try! DomainAuthority(name: "lab")
    let now: Int64 = 50_000

    func certificate(by domain: DomainAuthority, _ host: String = "node-a") throws -> HostCertificate {
        domain.certify(try HostIdentity(hostID: host).publicKeys, serial: 1, notBefore: 1_000, notAfter: 100_000)
    }

    func refusal(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch { return "\(error)" }
    }

    @Test func theOverlapTrustsBothKeysAndTheRetirementOnlyTheNewOne() throws {
        let trust = TrustStore(anchors: [old.trustAnchor], clockSkewSeconds: 0)
        let oldCert = try certificate(by: old), newCert = try certificate(by: new, "node-b")
        #expect(refusal { try trust.verify(newCert, now: now) }?.contains("not a trusted domain key") == true) // before: the new key is unknown
        let overlap = DomainKeyRotation(from: old, to: new, version: 1, issuedAt: now, oldRetired: false)
        // Through its wire form, as a peer receives it.
        let received = try DomainKeyRotation(serialized: overlap.serialized)
        #expect(try trust.domainKeys.install(received, configured: trust.configuredAnchors) == .installed)
        // Every copy of the store sees it (the registry is shared).
        let copy = trust
        #expect(throws: Never.self) { try copy.verify(oldCert, now: now) }
        #expect(throws: Never.self) { try copy.verify(newCert, now: now) }
        #expect(Set(copy.anchors.keys) == [old.signingKey.publicKey, new.signingKey.publicKey])
        // The same version again, or an older one: nothing changes.
        #expect(try trust.domainKeys.install(received, configured: trust.configuredAnchors) == .stale)
        let retire = DomainKeyRotation(from: old, to: new, version: 2, issuedAt: now, oldRetired: true)
        #expect(try trust.domainKeys.install(retire, configured: trust.configuredAnchors) == .installed)
        #expect(throws: Never.self) { try trust.verify(newCert, now: now) }
        let refused = refusal { try trust.verify(oldCert, now: now) }
        #expect(refused?.contains("retired") == true, "\(String(describing: refused))")
        #expect(Array(trust.anchors.keys) == [new.signingKey.publicKey]) // even though trust/lab.pub still names the old key
        #expect(trust.domainKeys.records.map(\.version) == [1, 2])
        // A new rotation from the retired key is refused: a retired key vouches for nothing.
        let rogue = try DomainAuthority(name: "lab")
        let fromRetired = refusal { try trust.domainKeys.install(DomainKeyRotation(from: old, to: rogue, version: 3, issuedAt: now, oldRetired: false),
                                                             configured: trust.configuredAnchors) }
        #expect(fromRetired?.contains("retired") == true, "\(String(describing: fromRetired))")
        // The chain goes on from the new key.
        let third = try DomainAuthority(name: "lab")
        #expect(try trust.domainKeys.install(DomainKeyRotation(from: new, to: third, version: 3, issuedAt: now, oldRetired: false),
                                             configured: trust.configuredAnchors) == .installed)
        #expect(throws: Never.self) { try trust.verify(try certificate(by: third), now: now) }
    }

    @Test func aHostThatMissedTheRotationLearnsTheChainInOrder() throws {
        let overlap = DomainKeyRotation(from: old, to: new, version: 1, issuedAt: now, oldRetired: false)
        let retire = DomainKeyRotation(from: old, to: new, version: 2, issuedAt: now, oldRetired: true)
        let late = TrustStore(anchors: [old.trustAnchor], clockSkewSeconds: 0)
        for record in [overlap, retire] { try late.domainKeys.install(record, configured: late.configuredAnchors) }
        #expect(Array(late.anchors.keys) == [new.signingKey.publicKey])
        // A host that trusts only the new key (installed after the rotation) takes the records too.
        let fresh = TrustStore(anchors: [new.trustAnchor], clockSkewSeconds: 0)
        #expect(try fresh.domainKeys.install(retire, configured: fresh.configuredAnchors) == .installed)
        #expect(Array(fresh.anchors.keys) == [new.signingKey.publicKey])
    }

    @Test func badRecordsAreRefusedByName() throws {
        let trust = TrustStore(anchors: [old.trustAnchor], clockSkewSeconds: 0)
        let stranger = try DomainAuthority(name: "lab"), other = try DomainAuthority(name: "prod")
        // Neither key known: a stranger's "rotation" of lab.
        let unknown = refusal { try trust.domainKeys.install(DomainKeyRotation(from: stranger, to: new, version: 1, issuedAt: now, oldRetired: false),
                                                         configured: trust.configuredAnchors) }
        #expect(unknown?.contains("neither its old key") == true, "\(String(describing: unknown))")
        // A domain this host does not trust.
        let foreign = refusal { try trust.domainKeys.install(DomainKeyRotation(from: other, to: try DomainAuthority(name: "prod"), version: 1, issuedAt: now, oldRetired: false),
                                                         configured: trust.configuredAnchors) }
        #expect(foreign?.contains("does not trust") == true, "\(String(describing: foreign))")
        // Signed by one key only: the new key's signature replaced by garbage, then the old one's.
        let good = DomainKeyRotation(from: old, to: new, version: 1, issuedAt: now, oldRetired: false)
        var wire = try Hostmesh_V1_DomainKeyRotation(serializedBytes: good.serialized)
        wire.newSignature = Data(repeating: 7, count: 64)
        let oneKey = refusal { try trust.domainKeys.install(try! DomainKeyRotation(serialized: try! wire.serializedBytes()), configured: trust.configuredAnchors) }
        #expect(oneKey?.contains("the new key's signature does not verify") == true, "\(String(describing: oneKey))")
        wire = try Hostmesh_V1_DomainKeyRotation(serializedBytes: good.serialized)
        wire.oldSignature = Data(repeating: 7, count: 64)
        #expect(refusal { try trust.domainKeys.install(try! DomainKeyRotation(serialized: try! wire.serializedBytes()), configured: trust.configuredAnchors) }?
            .contains("the old key's signature does not verify") == true)
        // Structure.
        #expect(refusal { _ = try DomainKeyRotation(serialized: [0xff, 0x01]) }?.contains("does not decode") == true)
        #expect(refusal { _ = try DomainKeyRotation(serialized: DomainKeyRotation(from: old, to: old, version: 1, issuedAt: now, oldRetired: false).serialized) }?
            .contains("new key is its old key") == true)
        #expect(refusal { _ = try DomainKeyRotation(serialized: DomainKeyRotation(from: old, to: new, version: 0, issuedAt: now, oldRetired: false).serialized) }?
            .contains("version 0") == true)
        #expect(trust.domainKeys.records.isEmpty && Array(trust.anchors.keys) == [old.signingKey.publicKey]) // nothing changed
    }
}

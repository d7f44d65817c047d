import Foundation
import MeshIdentity
import MeshWire
import Testing

/// Ownership claims with evidence (Protocol.md §6.12), the pure verification core: a host fences
/// its copy only on a record whose evidence leads from the point it holds to the record's. A
/// forged record with a higher epoch but no valid evidence fences nothing.
@Suite struct OwnershipEvidenceTests {
    let domain = try! DomainAuthority(name: "lab")
    let now: Int64 = 1_800_000_000
    let hosts: [String: (HostIdentity, HostCertificate)]
    let trust: TrustStore

    init() throws {
        var hosts: [String: (HostIdentity, HostCertificate)] = [:]
        for (serial, name) in ["node-a", "node-b", "node-c"].enumerated() {
            let identity = try HostIdentity(hostID: name)
            hosts[name] = (identity, domain.certify(identity.publicKeys, serial: UInt64(serial + 1), notBefore: now - 3600, notAfter: now + 86_400))
        }
        self.hosts = hosts
        trust = TrustStore(anchors: [domain.trustAnchor])
    }

    func handover(_ from: String, at epoch: UInt64, to: String, vm: String = "vm-1", signedBy signer: String? = nil) throws -> OwnershipEvidence {
        let (identity, certificate) = hosts[signer ?? from]!
        var statement = try HandoverStatement.sign(vm: vm, epoch: epoch, to: to, migration: "m-\(epoch)", at: now,
                                                   identity: identity, certificate: certificate)
        if let signer, signer != from {
            // A host signing in another's name: the body says `from`, the key and certificate are the signer's.
            var body = statement.body
            body.fromHost = from
            let bytes: [UInt8] = try body.serializedBytes()
            var wire = Hostmesh_V1_TrustHandoverStatement()
            wire.body = Data(bytes)
            wire.signature = Data(identity.signingKey.sign(HandoverStatement.signatureContext + bytes))
            wire.certificate = Data(certificate.serialized)
            statement = try HandoverStatement(serialized: try wire.serializedBytes())
        }
        return .handover(statement)
    }

    func check(held: OwnershipPoint, claimed: OwnershipPoint, _ evidence: [OwnershipEvidence],
               claims: [String: String] = [:]) -> OwnershipEvidenceCheck.Verdict {
        OwnershipEvidenceCheck.check(vm: "vm-1", held: held, claimed: claimed, evidence: evidence,
                                     verifyHandover: { try trust.verify($0) },
                                     readClaim: { directory, vm, epoch in claims["\(directory)/\(vm).claim.\(epoch)"] })
    }

    func refusal(_ verdict: OwnershipEvidenceCheck.Verdict) -> String {
        if case .refused(let reason) = verdict { return reason }
        return ""
    }

    let a3 = OwnershipPoint(owner: "node-a", epoch: 3)

    @Test func theSourcesSignedHandoverFencesItsOwnCopy() throws {
        let verdict = check(held: a3, claimed: .init(owner: "node-b", epoch: 4), [try handover("node-a", at: 3, to: "node-b")])
        #expect(verdict == .fence(path: [a3, .init(owner: "node-b", epoch: 4)]))
    }

    @Test func aChainOfHandoversFencesACopyThatMissedThemAll() throws {
        let evidence = [try handover("node-a", at: 3, to: "node-b"), try handover("node-b", at: 4, to: "node-c")]
        #expect(check(held: a3, claimed: .init(owner: "node-c", epoch: 5), evidence)
                == .fence(path: [a3, .init(owner: "node-b", epoch: 4), .init(owner: "node-c", epoch: 5)]))
        // A holder further along the chain starts where it is: node-b at 4 checks only the last link.
        #expect(check(held: .init(owner: "node-b", epoch: 4), claimed: .init(owner: "node-c", epoch: 5), evidence)
                == .fence(path: [.init(owner: "node-b", epoch: 4), .init(owner: "node-c", epoch: 5)]))        // The owner's own later epochs (a restart in place) need no link; another owner's do.
        #expect(check(held: a3, claimed: .init(owner: "node-c", epoch: 7), evidence)
                == .fence(path: [a3, .init(owner: "node-b", epoch: 4), .init(owner: "node-c", epoch: 5), .init(owner: "node-c", epoch: 7)]))
        #expect(refusal(check(held: a3, claimed: .init(owner: "node-b", epoch: 7), evidence)).contains("nor at an earlier epoch of its owner"))
        // node-b restarted in place (4 -> 6) before handing on: the walk continues from its later epoch.
        let restarted = [try handover("node-a", at: 3, to: "node-b"), try handover("node-b", at: 6, to: "node-c")]
        #expect(check(held: a3, claimed: .init(owner: "node-c", epoch: 7), restarted)
                == .fence(path: [a3, .init(owner: "node-b", epoch: 4), .init(owner: "node-c", epoch: 7)]))
        // But the first link leaves the held point exactly: node-a's later epoch is not this copy's.
        #expect(refusal(check(held: a3, claimed: .init(owner: "node-b", epoch: 6), [try handover("node-a", at: 5, to: "node-b")]))
                .contains("no link of the evidence leaves node-a@3"))
        // A later epoch of the owner never reaches back below where the evidence arrived.
        #expect(refusal(check(held: a3, claimed: .init(owner: "node-b", epoch: 4), evidence)).contains("arrives at node-c@5"))
    }

    @Test func aForgedRecordWithAHigherEpochButNoValidEvidenceFencesNothing() throws {
        let forged = OwnershipPoint(owner: "node-c", epoch: 9)
        // No evidence at all.
        #expect(refusal(check(held: a3, claimed: forged, [])).contains("carries no evidence"))
        // node-c signs a handover in node-a's name: its key is not node-a's.
        #expect(refusal(check(held: a3, claimed: .init(owner: "node-b", epoch: 4), [try handover("node-a", at: 3, to: "node-b", signedBy: "node-c")]))
                .contains("carries the certificate of node-c"))
        // A genuine handover to someone else, replayed with a higher claim: it does not arrive there.
        #expect(refusal(check(held: a3, claimed: forged, [try handover("node-a", at: 3, to: "node-b")])).contains("arrives at node-b@4, not at the record's node-c@9"))
        // A genuine handover of another VM.
        #expect(refusal(check(held: a3, claimed: .init(owner: "node-b", epoch: 4), [try handover("node-a", at: 3, to: "node-b", vm: "vm-2")]))
                .contains("names VM vm-2"))
        // An old handover of this copy's past (node-a at 2) does not leave the held point.
        #expect(refusal(check(held: a3, claimed: .init(owner: "node-b", epoch: 3), [try handover("node-a", at: 2, to: "node-b")]))
                .contains("not above the held 3"))
        #expect(refusal(check(held: a3, claimed: forged, [try handover("node-a", at: 2, to: "node-b")])).contains("no link of the evidence leaves node-a@3"))
        // A chain with a gap: node-b's link is missing.
        #expect(refusal(check(held: a3, claimed: .init(owner: "node-a", epoch: 6), [try handover("node-a", at: 3, to: "node-b"), try handover("node-c", at: 5, to: "node-a")]))
                .contains("leaves node-c@5, but the evidence is at node-b@4"))
        // A statement from a domain this host does not trust.
        let stranger = try DomainAuthority(name: "lab")
        let identity = hosts["node-a"]!.0
        let foreign = stranger.certify(identity.publicKeys, serial: 9, notBefore: now - 60, notAfter: now + 60)
        let statement = try HandoverStatement.sign(vm: "vm-1", epoch: 3, to: "node-b", migration: "m", at: now, identity: identity, certificate: foreign)
        #expect(refusal(check(held: a3, claimed: .init(owner: "node-b", epoch: 4), [.handover(statement)])).contains("does not verify"))
    }

    @Test func anAlteredStatementIsRefused() throws {
        guard case .handover(let genuine) = try handover("node-a", at: 3, to: "node-b") else { return }
        var wire = try Hostmesh_V1_TrustHandoverStatement(serializedBytes: genuine.serialized)
        var body = genuine.body
        body.toHost = "node-c"
        wire.body = try body.serializedBytes()
        let altered = try HandoverStatement(serialized: try wire.serializedBytes())
        #expect(refusal(check(held: a3, claimed: .init(owner: "node-c", epoch: 4), [.handover(altered)])).contains("signature does not verify"))
        // The structure check: a handover that skips an epoch is refused when decoded.
        body = genuine.body
        body.toEpoch = 6
        wire.body = try body.serializedBytes()
        #expect(throws: IdentityError.self) { try HandoverStatement(serialized: try wire.serializedBytes()) }
    }

    @Test func aTakeoverIsCheckedAgainstTheClaimFileOnSharedStorage() throws {
        let taker = OwnershipPoint(owner: "node-c", epoch: 5)
        let claim = OwnershipEvidence.leaseClaim(vm: "vm-1", owner: "node-c", epoch: 5, leaseDirectory: "/shared/.hostmesh")
        #expect(check(held: a3, claimed: taker, [claim], claims: ["/shared/.hostmesh/vm-1.claim.5": "node-c"]) == .fence(path: [a3, taker]))
        // No such claim file, or one naming another host: nothing is fenced.
        #expect(refusal(check(held: a3, claimed: taker, [claim])).contains("cannot be read"))
        #expect(refusal(check(held: a3, claimed: taker, [claim], claims: ["/shared/.hostmesh/vm-1.claim.5": "node-b"])).contains("names node-b, not node-c"))
        // A takeover after a handover: node-a handed to node-b at 4, node-b died, node-c claimed at 6.
        let chain = [try handover("node-a", at: 3, to: "node-b"),
                     OwnershipEvidence.leaseClaim(vm: "vm-1", owner: "node-c", epoch: 6, leaseDirectory: "/shared/.hostmesh")]
        #expect(check(held: a3, claimed: .init(owner: "node-c", epoch: 6), chain, claims: ["/shared/.hostmesh/vm-1.claim.6": "node-c"])
                == .fence(path: [a3, .init(owner: "node-b", epoch: 4), .init(owner: "node-c", epoch: 6)]))
    }
}

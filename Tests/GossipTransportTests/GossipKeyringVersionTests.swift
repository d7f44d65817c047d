import GossipTransport
import Testing

/// The versioned, mesh-wide gossip keyring (Protocol.md §4.17), pure: the changes an operator
/// signs, the version rules a host applies to a record, and the checks against what members
/// announce.
@Suite("Gossip keyring versions")
struct GossipKeyringVersionTests {
    let old = try! GossipKey(bytes: [UInt8](repeating: 1, count: 32))
    let new = try! GossipKey(bytes: [UInt8](repeating: 2, count: 32))

    func base() throws -> GossipKeyringManifest {
        GossipKeyringManifest(of: try GossipKeyring(primary: old), version: 0)
    }

    @Test func installUseRemoveEachMakeTheNextVersion() throws {
        let installed = try GossipKeyringChange.install(new).applied(to: try base())
        #expect(installed.version == 1 && installed.primary == old.id && Set(installed.keyIDs) == [old.id, new.id])
        #expect(installed.keyIDs.first == old.id, "the primary comes first")
        let used = try GossipKeyringChange.use(new.id).applied(to: installed)
        #expect(used.version == 2 && used.primary == new.id && used.keyIDs == [new.id, old.id])
        let removed = try GossipKeyringChange.remove(old.id).applied(to: used)
        #expect(removed.version == 3 && removed.keyIDs == [new.id] && removed.primary == new.id)
    }

    @Test func theManifestRefusesWhatWouldBreakTheRing() throws {
        let ring = try base()
        #expect(throws: GossipKeyringError.cannotRemovePrimary(old.id)) { try GossipKeyringChange.remove(old.id).applied(to: ring) }
        #expect(throws: GossipKeyringError.unknownKey(new.id)) { try GossipKeyringChange.use(new.id).applied(to: ring) }
        #expect(throws: GossipKeyringError.unknownKey(new.id)) { try GossipKeyringChange.remove(new.id).applied(to: ring) }
        #expect(throws: GossipKeyringError.alreadyInstalled(old.id)) { try GossipKeyringChange.install(old).applied(to: ring) }
        #expect(throws: GossipKeyringError.alreadyPrimary(old.id)) { try GossipKeyringChange.use(old.id).applied(to: ring) }
        var full = ring
        for byte in UInt8(10)..<UInt8(25) { full = try GossipKeyringChange.install(try GossipKey(bytes: [UInt8](repeating: byte, count: 32))).applied(to: full) }
        #expect(full.entries.count == 16)
        #expect(throws: GossipKeyringError.tooManyKeys(16)) { try GossipKeyringChange.install(new).applied(to: full) }
    }

    @Test func aNewerManifestIsAdoptedWithTheHandedSecretAndAnOlderOneChangesNothing() throws {
        var held = VersionedGossipKeyring(unmanaged: try GossipKeyring(primary: old))
        #expect(held.version == 0)
        let v1 = try GossipKeyringChange.install(new).applied(to: held.manifest)
        let v2 = try GossipKeyringChange.use(new.id).applied(to: v1)
        // v2 arrives first (a member that missed v1): it names both keys, the new one handed beside it.
        #expect(try held.adopt(v2, secrets: [new]) == .adopted(previous: 0))
        #expect(held.version == 2 && held.keyring.primaryID == new.id && held.keyring.contains(old.id))
        // v1 arrives late: older, ignored; the keyring stays v2's.
        #expect(try held.adopt(v1, secrets: [new]) == .stale(held: 2))
        #expect(held.keyring.primaryID == new.id)
        // The same version again: ignored too.
        #expect(try held.adopt(v2, secrets: []) == .stale(held: 2))
        #expect(held.secretsInManifestOrder.map(\.id) == [new.id, old.id])
    }

    @Test func aManifestWhoseSecretIsMissingOrWrongIsRefusedAndChangesNothing() throws {
        var held = VersionedGossipKeyring(unmanaged: try GossipKeyring(primary: old))
        let v1 = try GossipKeyringChange.install(new).applied(to: held.manifest)
        #expect(throws: GossipKeyringError.missingSecret(new.id)) { try held.adopt(v1, secrets: []) }
        // A secret with the right id but another value cannot be made (ids are 32 bits of a keyed
        // hash), so the commitment check is shown with a commitment that does not match.
        var forged = v1
        forged.entries = forged.entries.map { $0.id == new.id ? .init(id: new.id, commitment: [UInt8](repeating: 0, count: 32)) : $0 }
        #expect(throws: GossipKeyringError.commitmentMismatch(new.id)) { try held.adopt(forged, secrets: [new]) }
        #expect(held.version == 0 && held.keyring.keyIDs == [old.id])
    }

    @Test func theCommitmentIsKeyedAndStable() throws {
        #expect(old.commitment == (try GossipKey(bytes: [UInt8](repeating: 1, count: 32))).commitment)
        #expect(old.commitment != new.commitment)
        #expect(old.commitment.count == 32)
    }

    @Test func useWaitsForEveryReachableMemberAndRemoveForEveryoneSealingWithTheKey() throws {
        let usage = GossipKeyringUsage(holders: [
            .init(host: "node-1", reachable: true, keyIDs: [old.id, new.id], primary: old.id, version: 1),
            .init(host: "node-2", reachable: true, keyIDs: [old.id], primary: old.id, version: 0),
            .init(host: "node-3", reachable: false, keyIDs: [old.id], primary: old.id, version: 0),
        ])
        #expect(throws: GossipKeyringError.notYetHeld(new.id, hosts: ["node-2"])) { try usage.check(.use(new.id)) }
        try usage.check(.install(new))
        #expect(throws: GossipKeyringError.stillSealing(old.id, hosts: ["node-1", "node-2"])) { try usage.check(.remove(old.id)) }
        #expect(usage.holding(old.id) == ["node-1", "node-2", "node-3"])
        // A member that is down is not waited for: it catches up when it returns.
        let later = GossipKeyringUsage(holders: [
            .init(host: "node-1", reachable: true, keyIDs: [new.id, old.id], primary: new.id, version: 2),
            .init(host: "node-2", reachable: true, keyIDs: [new.id, old.id], primary: new.id, version: 2),
            .init(host: "node-3", reachable: false, keyIDs: [old.id], primary: old.id, version: 0),
        ])
        try later.check(.use(new.id))
        try later.check(.remove(old.id))
        #expect("\(GossipKeyringError.stillSealing(old.id, hosts: ["node-2"]))".contains("node-2"))
    }
}

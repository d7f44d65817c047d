public import ControlAPI
public import GossipTransport
public import MeshWire
import MeshCrypto
import MeshIdentity

/// The next gossip keyring record an operator signs (`hostmesh keys gossip install|use|remove`,
/// Protocol.md §4.17), planned from what the local agent holds and what the members announce:
/// one version up, the change checked against the manifest (no duplicate install, no `use` of a
/// missing key, never the primary removed) and against the members (no `use` of a key a
/// reachable member does not hold yet, no `remove` of a key one still seals with, unless forced).
/// Pure: the command line signs the body it returns.
public struct GossipKeyringPlan: Sendable {
    /// The body to sign.
    public let body: Hostmesh_V1_TrustGossipKeyringBody
    /// The manifest it states.
    public let next: GossipKeyringManifest
    /// Members that still hold the key a `remove` takes out (they drop it when the record reaches them).
    public let stillHolding: [String]

    /// Plans `change` on `held`; `force` skips the members check (never the manifest's).
    public init(_ change: GossipKeyringChange, held: ControlTypes.GossipKeyringInfo, force: Bool, now: Int64) throws(GossipKeyringError) {
        let current = try Self.manifest(held)
        // The manifest's refusals first (removing the primary is never possible), then the members'.
        next = try change.applied(to: current, maxKeys: GossipKeyringRecord.maxKeys)
        if !force { try Self.usage(held).check(change) }
        stillHolding = if case .remove(let id) = change { Self.usage(held).holding(id) } else { [] }
        body = GossipKeyringRecord.body(domain: held.domain, version: next.version, issuedAt: now,
                                        entries: next.entries.map { .init(id: $0.id.rawValue, commitment: $0.commitment) },
                                        primary: next.primary.rawValue)
    }

    /// The manifest the agent reports.
    static func manifest(_ held: ControlTypes.GossipKeyringInfo) throws(GossipKeyringError) -> GossipKeyringManifest {
        var entries: [GossipKeyringManifest.Entry] = []
        for key in held.keys {
            guard let id = GossipKeyID(hex: key.id), let commitment = Hex.decode(key.commitment), commitment.count == 32 else {
                throw .fileMalformed(line: 0, reason: "the agent reported key \(key.id) with an unreadable id or commitment")
            }
            entries.append(.init(id: id, commitment: commitment))
        }
        guard let primary = GossipKeyID(hex: held.primary) else {
            throw .fileMalformed(line: 0, reason: "the agent reported an unreadable primary key id \(held.primary)")
        }
        return GossipKeyringManifest(version: held.version, entries: entries, primary: primary)
    }

    /// Who holds what, as the agent's members announce it.
    static func usage(_ held: ControlTypes.GossipKeyringInfo) -> GossipKeyringUsage {
        GossipKeyringUsage(holders: held.members.map { member in
            GossipKeyringUsage.Holder(host: member.host, reachable: member.status == "alive" || member.status == "suspect",
                                      keyIDs: member.keys.compactMap(GossipKeyID.init(hex:)),
                                      primary: member.primary.flatMap(GossipKeyID.init(hex:)), version: member.version)
        })
    }
}

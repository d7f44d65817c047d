public import Foundation
public import MeshWire

extension OwnershipEvidence {
    /// Decodes one link of a record's evidence (Protocol.md §6.12). A handover statement is
    /// checked for structure here; its signature only by `TrustStore.verify(_: HandoverStatement)`.
    public init(wire: Hostmesh_V1_OwnershipEvidenceLink) throws(IdentityError) {
        switch wire.link {
        case .handover(let bytes)?:
            self = .handover(try HandoverStatement(serialized: [UInt8](bytes)))
        case .leaseClaim(let claim)?:
            guard !claim.vmID.isEmpty, !claim.owner.isEmpty, claim.epoch >= 1, !claim.leaseDirectory.isEmpty else {
                throw .evidenceRefused("a lease claim names no VM, owner, epoch or directory")
            }
            self = .leaseClaim(vm: claim.vmID, owner: claim.owner, epoch: claim.epoch, leaseDirectory: claim.leaseDirectory)
        case nil:
            throw .evidenceRefused("a link of evidence is neither a handover statement nor a lease claim (newer software?)")
        }
    }

    /// The wire form.
    public var wire: Hostmesh_V1_OwnershipEvidenceLink {
        var link = Hostmesh_V1_OwnershipEvidenceLink()
        switch self {
        case .handover(let statement):
            link.handover = Data(statement.serialized)
        case .leaseClaim(let vm, let owner, let epoch, let directory):
            var claim = Hostmesh_V1_OwnershipLeaseClaim()
            claim.vmID = vm
            claim.owner = owner
            claim.epoch = epoch
            claim.leaseDirectory = directory
            link.leaseClaim = claim
        }
        return link
    }

    /// The point this link arrives at.
    public var arrival: OwnershipPoint {
        switch self {
        case .handover(let statement): return statement.to
        case .leaseClaim(_, let owner, let epoch, _): return OwnershipPoint(owner: owner, epoch: epoch)
        }
    }
}

/// The evidence an agent keeps with a VM row or an ownership row (Protocol.md §6.12): the wire
/// links, oldest first, at most `OwnershipEvidenceCheck.maxLinks`.
public enum OwnershipEvidenceChain {
    /// `links` followed by `link`, dropping the oldest beyond the limit.
    public static func extending(_ links: [Hostmesh_V1_OwnershipEvidenceLink], with link: Hostmesh_V1_OwnershipEvidenceLink) -> [Hostmesh_V1_OwnershipEvidenceLink] {
        Array((links + [link]).suffix(OwnershipEvidenceCheck.maxLinks))
    }

    /// The stored form of `links` (nil when there are none).
    public static func encode(_ links: [Hostmesh_V1_OwnershipEvidenceLink]) -> Data? {
        guard !links.isEmpty else { return nil }
        var chain = Hostmesh_V1_OwnershipEvidenceChain()
        chain.links = links
        return try! chain.serializedData() // a message of bytes and strings always encodes
    }

    /// The links of a stored chain; none when there is none, or when it does not decode (then
    /// the record carries no evidence, and fences nothing: the safe side).
    public static func decode(_ data: Data?) -> [Hostmesh_V1_OwnershipEvidenceLink] {
        // Not decodable: no evidence, so the record fences nothing (the safe side).
        guard let data, let chain = try? Hostmesh_V1_OwnershipEvidenceChain(serializedBytes: data) else { return [] }
        return chain.links
    }
}

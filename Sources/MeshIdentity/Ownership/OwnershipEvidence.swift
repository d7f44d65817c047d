/// An (owner, epoch) pair: who owns a VM at which ownership epoch (Protocol.md §6.4).
public struct OwnershipPoint: Sendable, Hashable, CustomStringConvertible {
    /// Host id.
    public var owner: String
    /// Ownership epoch.
    public var epoch: UInt64

    /// A point.
    public init(owner: String, epoch: UInt64) {
        self.owner = owner
        self.epoch = epoch
    }

    /// `node-b@7`.
    public var description: String { "\(owner)@\(epoch)" }
}

/// One link of the evidence for an ownership epoch (Protocol.md §6.12).
public enum OwnershipEvidence: Sendable, Equatable {
    /// The previous owner's signed handover at a migration's commit: from (owner, e) to (to, e + 1).
    case handover(HandoverStatement)
    /// A takeover under a lease (§9.2): `owner` created `<vm>.claim.<epoch>` in the VM's lease
    /// directory. Nobody signs it (the previous owner is dead); a verifier reads the claim file
    /// on the shared storage it ran the VM from.
    case leaseClaim(vm: String, owner: String, epoch: UInt64, leaseDirectory: String)
}

/// Whether a host fences its copy of a VM on an ownership record (Protocol.md §6.12): only when
/// the record's evidence leads, link by link, from the point the host holds to the record's.
/// Pure: the signature checks and the claim file read are injected.
public enum OwnershipEvidenceCheck {
    /// The outcome.
    public enum Verdict: Sendable, Equatable {
        /// The evidence leads from the held point to the record's: the held copy is stale.
        case fence(path: [OwnershipPoint])
        /// No fencing; the reason names what is missing or wrong.
        case refused(String)
    }

    /// Most links a record carries.
    public static let maxLinks = 16

    /// Checks `evidence` for a record (`vm`, `claimed`) against what this host holds (`held`).
    ///
    /// - `verifyHandover` checks a statement's signature and certificate (`TrustStore.verify`);
    ///   throwing refuses that link.
    /// - `readClaim` returns the host id written in `<leaseDirectory>/<vm>.claim.<epoch>`, or nil
    ///   when it cannot be read (absent, unreadable storage): the link is refused.
    ///
    /// The walk starts at the first link that leaves the held point (a handover from exactly
    /// `held`, or a lease claim above `held.epoch`); every later link must continue from where the
    /// previous one arrived (a handover from exactly that point or from a later epoch of the same
    /// owner, a claim above its epoch); the
    /// last must arrive at `claimed`, or at an earlier epoch of the same owner (the owner's own
    /// later epochs, such as a restart in place, need no link). Links before the start are
    /// history this host need not check.
    public static func check(vm: String, held: OwnershipPoint, claimed: OwnershipPoint, evidence: [OwnershipEvidence],
                             verifyHandover: (HandoverStatement) throws -> Void,
                             readClaim: (_ leaseDirectory: String, _ vm: String, _ epoch: UInt64) -> String?) -> Verdict {
        guard claimed.epoch > held.epoch else { return .refused("the record's epoch \(claimed.epoch) is not above the held \(held.epoch): nothing to fence") }
        guard !evidence.isEmpty else { return .refused("the record for epoch \(claimed.epoch) carries no evidence") }
        guard evidence.count <= maxLinks else { return .refused("the record carries \(evidence.count) links of evidence, more than \(maxLinks)") }
        guard let start = evidence.firstIndex(where: { leaves(held, $0) }) else {
            return .refused("no link of the evidence leaves \(held) (this host's copy): it neither hands this copy over nor claims above it")
        }
        var at = held
        var path = [held]
        for link in evidence[start...] {
            switch link {
            case .handover(let statement):
                guard statement.vmID == vm else { return .refused("a handover names VM \(statement.vmID), not \(vm)") }
                // After the first link, an owner may have moved its own epoch up (a restart in
                // place) before handing the VM on: its later epoch continues the walk.
                let continues = statement.from == at || (path.count > 1 && statement.from.owner == at.owner && statement.from.epoch > at.epoch)
                guard continues else { return .refused("a handover leaves \(statement.from), but the evidence is at \(at)") }
                do { try verifyHandover(statement) } catch { return .refused("the handover \(statement.from) -> \(statement.to) does not verify: \(error)") }
                at = statement.to
            case .leaseClaim(let claimVM, let owner, let epoch, let directory):
                guard claimVM == vm else { return .refused("a lease claim names VM \(claimVM), not \(vm)") }
                guard epoch > at.epoch else { return .refused("a lease claim at epoch \(epoch) does not rise above \(at)") }
                guard let written = readClaim(directory, vm, epoch) else {
                    return .refused("the claim file \(vm).claim.\(epoch) in \(directory) cannot be read: the takeover cannot be checked")
                }
                guard written == owner else { return .refused("the claim file \(vm).claim.\(epoch) names \(written), not \(owner)") }
                at = OwnershipPoint(owner: owner, epoch: epoch)
            }
            path.append(at)
        }
        // The owner's own later epochs need no link: a restart in place (§9.1) moves its epoch
        // up, and once the evidence left the held point verifiably, this copy is stale whatever
        // its new owner does with the VM after.
        guard at.owner == claimed.owner, at.epoch <= claimed.epoch else {
            return .refused("the evidence arrives at \(at), not at the record's \(claimed) (nor at an earlier epoch of its owner)")
        }
        if at != claimed { path.append(claimed) }
        return .fence(path: path)
    }

    static func leaves(_ held: OwnershipPoint, _ link: OwnershipEvidence) -> Bool {
        switch link {
        case .handover(let statement): return statement.from == held
        case .leaseClaim(_, _, let epoch, _): return epoch > held.epoch
        }
    }
}

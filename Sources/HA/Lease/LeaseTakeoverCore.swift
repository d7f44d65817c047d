public import MeshTime

/// A surviving host's side of a VM's leases (Protocol.md §9.2): decide when the VM whose owner is
/// gone may be claimed, and by whom. A VM has one lease file per host that may run a copy of it
/// (the owner, and during a handover its destination); a read gives them all. Exactly one host wins a claim: the claim is an exclusive
/// create on the shared storage (`<vm>.claim.<epoch>`), never a belief.
///
/// A takeover needs all of: placement chose this host (the shell asks placement once membership
/// says the owner is dead, or once the leases stopped changing); the VM's lease files read the
/// same (same hosts, epochs, counters and states) on every read for `expiry` on this host's
/// clock, counted from the first read that showed them; at least one is held by an owner (all
/// released or `incoming`: the VM was stopped on purpose, or only a migration's destination that
/// never committed had a copy). The expiry alone proves the
/// owner's copy is dead (its owner fenced it, or died with it): membership is not needed for
/// safety, which is why a host cut off from the storage but alive in the mesh loses its VMs and a
/// host cut off from the mesh but renewing keeps them. A read that fails or a file that does not
/// parse starts the wait again (nothing can be proven).
///
/// A claim that is never followed by its winner's lease (the winner died or stopped between its
/// claim and its keeper's first write) does not leave the VM down for good: the highest claim is
/// part of what must read the same, and once the leases and that claim have read the same for
/// twice the expiry (the winner's own confirming wait is at most one expiry after its claim),
/// the VM is claimed again above it. The abandoned winner, should it wake, is kept down by its
/// keeper, which looks for claims above its epoch after acquiring (Protocol.md §9.2).
public struct LeaseTakeoverCore: Sendable, Equatable {
    /// What the lease file held at a read.
    public struct Snapshot: Sendable, Equatable {
        /// The host that wrote it.
        public var owner: String
        /// Its epoch.
        public var epoch: Int64
        /// Its counter.
        public var counter: UInt64
        /// Whether the owner released it on purpose (VM stopped or moved): no takeover then.
        public var released: Bool
        /// A migration's destination before the commit (`state incoming`): it must be stale like
        /// any other, but it does not make the VM one to restart (its host is not the owner).
        public var incoming: Bool

        /// A snapshot.
        public init(owner: String, epoch: Int64, counter: UInt64, released: Bool = false, incoming: Bool = false) {
            self.owner = owner
            self.epoch = epoch
            self.counter = counter
            self.released = released
            self.incoming = incoming
        }
    }

    /// Where the decision is.
    public enum State: Sendable, Equatable {
        /// Watching the leases: `seen` and the highest claim `claim` unchanged since `since` (nil:
        /// nothing readable yet).
        case watching(seen: [Snapshot]?, claim: Int64?, since: MeshInstant?)
        /// The claim for `epoch` is being made, decided on the leases reading `decidedOn`.
        case claiming(epoch: Int64, decidedOn: [Snapshot])
        /// This host holds the claim for `epoch`; it takes the VM over once a read made after the
        /// claim shows the leases as they were when it decided, or, when they changed since (an
        /// owner's keeper acquired or renewed meanwhile: it sees the claim and fences), once they
        /// read the same again for `expiry`.
        case confirming(epoch: Int64, expected: [Snapshot], since: MeshInstant?)
        /// This host won `epoch`: it journals, writes its lease and starts the VM.
        case won(epoch: Int64)
        /// Another host won the claim. The next read watches again, with that claim in view: if
        /// its winner never writes a lease, the VM is claimed again above it.
        case lost(epoch: Int64)
    }

    /// What happened.
    public enum Event: Sendable, Equatable {
        /// A read of the VM's lease files, sorted by host: their contents, or nil when one could
        /// not be read or parsed; and the highest claim file's epoch, nil when there is none.
        case read([Snapshot]?, claim: Int64? = nil, now: MeshInstant)
        /// Placement's verdict: this host is the one to restart the VM.
        case chosen(Bool)
        /// The exclusive create of the claim file for `epoch` succeeded (true) or found it taken.
        /// Every `read` after it MUST have been issued after the claim completed.
        case claimed(epoch: Int64, won: Bool)
    }

    /// What the shell MUST do.
    public enum Directive: Sendable, Equatable {
        /// Create the claim file for `epoch` exclusively (O_CREAT|O_EXCL, then fsync the file
        /// and its directory); report `claimed`.
        case claim(epoch: Int64)
        /// This host owns the VM at `epoch`: journal it (VM row at `epoch`), write the lease as its
        /// owner, start the VM, and gossip the ownership record.
        case takeOver(epoch: Int64)
    }

    /// The timings.
    public let settings: LeaseSettings
    /// The state.
    public private(set) var state: State = .watching(seen: nil, claim: nil, since: nil)
    private var chosen = false

    /// A core watching one VM's lease.
    public init(settings: LeaseSettings) { self.settings = settings }

    /// Handles one event; returns the directives.
    public mutating func handle(_ event: Event) -> [Directive] {
        switch (state, event) {
        case let (.watching(seen, seenClaim, since), .read(snapshot, claim, now)):
            guard let snapshot, !snapshot.isEmpty else {
                state = .watching(seen: nil, claim: nil, since: nil) // nothing proven: start again
                return []
            }
            guard snapshot == seen, claim == seenClaim, let since else {
                state = .watching(seen: snapshot, claim: claim, since: now)
                return []
            }
            return decide(snapshot, claim: claim, since: since, now: now)
        case let (.lost, .read(snapshot, claim, now)):
            // The winner's lease or record normally follows; if neither does, watch again.
            state = .watching(seen: nil, claim: nil, since: nil)
            return handle(.read(snapshot, claim: claim, now: now))
        case let (_, .chosen(yes)):
            chosen = yes
            return []
        case let (.claiming(epoch, decidedOn), .claimed(claimed, won)) where claimed == epoch:
            state = won ? .confirming(epoch: epoch, expected: decidedOn, since: nil) : .lost(epoch: epoch)
            return []
        case let (.confirming(epoch, expected, since), .read(snapshot, _, now)):
            // The claim and the owner's keeper race like two writers that each read the other's
            // file after writing their own: a keeper acquires (or renews) by writing its lease and
            // then looking for claims. If this read, made after the claim landed, shows the leases
            // unchanged, any later lease write is followed by a look that finds the claim (the
            // keeper refuses or fences); if they changed, that keeper may have started its copy
            // before the claim landed, and the copy is provably dead only after the usual expiry.
            guard let snapshot, !snapshot.isEmpty else {
                state = .confirming(epoch: epoch, expected: [], since: nil)
                return []
            }
            if since == nil, snapshot == expected, !expected.isEmpty {
                state = .won(epoch: epoch)
                return [.takeOver(epoch: epoch)]
            }
            guard snapshot == expected, let since else {
                state = .confirming(epoch: epoch, expected: snapshot, since: now)
                return []
            }
            guard now - since >= settings.expiry else { return [] }
            state = .won(epoch: epoch)
            return [.takeOver(epoch: epoch)]
        default:
            return []
        }
    }

    /// Whether the lease has provably expired, and the claim may be made.
    private mutating func decide(_ leases: [Snapshot], claim: Int64?, since: MeshInstant, now: MeshInstant) -> [Directive] {
        guard let highestLease = leases.map(\.epoch).max() else { return [] }
        // A claim no lease followed (its winner never acquired): abandoned only after twice the
        // expiry, so that a winner still in its confirming wait is not overtaken.
        let abandonedClaim = claim.map { $0 > highestLease } ?? false
        let wait = abandonedClaim ? settings.expiry * 2 : settings.expiry
        // Some owner's lease is held: all released or incoming means the VM was stopped on
        // purpose, or only a migration's destination that never committed held it.
        guard chosen, leases.contains(where: { !$0.released && !$0.incoming }), now - since >= wait else { return [] }
        // The VM's epoch rises by two above the highest lease and claim: above the owner's and
        // above the +1 a migration destination could have taken from it (Protocol.md §6.4), so
        // no ownership record ever ties, and above any claim already made.
        let epoch = max(highestLease, claim ?? 0) + 2
        state = .claiming(epoch: epoch, decidedOn: leases)
        return [.claim(epoch: epoch)]
    }
}

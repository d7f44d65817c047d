/// Updates waiting to be piggybacked, each sent a limited number of times
/// (memberlist's `TransmitLimitedQueue`, Protocol.md §4.5).
///
/// Membership's own updates (liveness, revocations, federation grants) go before metadata
/// updates, as memberlist sends its own broadcasts before its delegate's: members that change
/// their metadata often (an agent's capacity) would otherwise fill every datagram and hold up a
/// join or a revocation for minutes (`bench gossip --metadata-every 3`: 84 s for a join to
/// reach 100 members, against 0.7 s). Within each lane, updates that have been sent the fewest
/// times go first, newest first among equals. A newer update about the same member (liveness,
/// or metadata, separately) replaces the older one. Replaced entries are dropped lazily when
/// they are next looked at. An entry may carry a transmit multiplier: refutations are sent
/// twice as often as other updates, because a member that misses a refutation declares a live
/// member dead (see `enqueue`).
struct BroadcastQueue: Sendable {
    /// What an update supersedes: liveness updates replace liveness updates of the same member,
    /// metadata updates replace metadata updates.
    enum Key: Hashable, Sendable {
        case liveness(MemberID)
        case metadata(MemberID)
        /// A domain's revocation list: a newer version replaces the older one.
        case revocation(domain: String)
        /// A federation grant: a newer version for the same domain and peer replaces the older.
        case federationGrant(key: String)

        /// The lane: 0 for membership's own updates, 1 for metadata (sent with what room is left).
        var lane: Int {
            if case .metadata = self { return 1 }
            return 0
        }
    }

    struct Entry: Sendable {
        var update: MemberUpdate
        var key: Key
        var generation: UInt64
        /// Bytes this update adds to a datagram.
        var cost: Int
        var transmits: Int
        /// This entry's limit is `transmitLimit * transmitMultiplier`.
        var transmitMultiplier: Int
    }

    /// `buckets[lane][t]` holds the lane's entries already sent `t` times, oldest first.
    private var buckets: [[[Entry]]] = [[], []]
    /// Current generation per key; an entry whose generation differs was superseded.
    private var current: [Key: UInt64] = [:]
    private var nextGeneration: UInt64 = 0

    /// Number of live (not superseded, not exhausted) updates.
    var count: Int { current.count }
    var isEmpty: Bool { current.isEmpty }
    /// Whether no update of membership's own lane (everything but metadata) is left to send.
    var membershipLaneIsEmpty: Bool { !current.keys.contains { $0.lane == 0 } }

    /// Queues `update`, replacing any queued update with the same key, to be sent
    /// `transmitMultiplier` times the normal limit.
    mutating func enqueue(_ update: MemberUpdate, cost: Int, transmitMultiplier: Int = 1) {
        let key: Key
        switch update {
        case .metadata(let member, _): key = .metadata(member)
        case .revocation(let notice): key = .revocation(domain: notice.domain)
        case .federationGrant(let notice): key = .federationGrant(key: notice.key)
        case .alive(let member, _, _, _, _), .suspect(let member, _, _, _), .dead(let member, _, _, _), .left(let member, _, _):
            key = .liveness(member)
        }
        nextGeneration += 1
        current[key] = nextGeneration
        if buckets[key.lane].isEmpty { buckets[key.lane].append([]) }
        buckets[key.lane][0].append(Entry(
                update: update, key: key, generation: nextGeneration, cost: cost, transmits: 0,
                transmitMultiplier: transmitMultiplier))
    }

    /// Takes the most urgent updates whose costs fit in `budget` bytes, counting one
    /// transmission for each; updates sent `transmitLimit` times are dropped.
    mutating func take(budget: Int, transmitLimit: Int, into updates: inout [MemberUpdate]) {
        guard !current.isEmpty, budget > 0 else { return }
        var remaining = budget
        for lane in buckets.indices where remaining > 0 {
            take(lane: lane, remaining: &remaining, transmitLimit: transmitLimit, into: &updates)
        }
        if current.isEmpty { buckets = [[], []] }
    }

    private mutating func take(lane: Int, remaining: inout Int, transmitLimit: Int, into updates: inout [MemberUpdate]) {
        // Moved out and back, not copied: the lane's arrays stay uniquely referenced.
        var buckets: [[Entry]] = []
        swap(&buckets, &self.buckets[lane])
        defer { swap(&buckets, &self.buckets[lane]) }
        var promoted: [(Int, Entry)] = []
        var bucketIndex = 0
        while bucketIndex < buckets.count, remaining > 0 {
            if buckets[bucketIndex].isEmpty {
                bucketIndex += 1
                continue
            }
            let entries = buckets[bucketIndex]
            var kept: [Entry] = []
            // Newest first: walk backwards, keep the survivors in their original order.
            var position = entries.count - 1
            while position >= 0 {
                var entry = entries[position]
                position -= 1
                guard current[entry.key] == entry.generation else { continue }  // superseded
                let limit = transmitLimit * entry.transmitMultiplier
                if entry.transmits >= limit {
                    current[entry.key] = nil  // limit shrank with the mesh: already sent enough
                    continue
                }
                if entry.cost <= remaining {
                    remaining -= entry.cost
                    updates.append(entry.update)
                    entry.transmits += 1
                    if entry.transmits >= limit {
                        current[entry.key] = nil
                    } else {
                        promoted.append((bucketIndex + 1, entry))
                    }
                } else {
                    kept.append(entry)
                }
            }
            buckets[bucketIndex] = kept.reversed()
            bucketIndex += 1
        }
        for (index, entry) in promoted.reversed() {
            while buckets.count <= index { buckets.append([]) }
            buckets[index].append(entry)
        }
    }

    /// The queued updates, most urgent first (for tests and diagnostics).
    var pendingUpdates: [MemberUpdate] {
        buckets.flatMap { $0.flatMap { $0.reversed() } }.filter { current[$0.key] == $0.generation }.map(\.update)
    }
}

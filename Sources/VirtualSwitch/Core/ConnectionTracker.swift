import MeshTime

/// A port's connection-tracking table: the state behind its stateful firewall.
///
/// Besides judging packets it supports the export protocol of a migration: `snapshot` (bulk,
/// during pre-copy), then `delta(since:)` as often as wanted and a last time at switchover.
/// Every change is stamped with the current generation; an export returns the generation it is
/// complete up to and opens the next one, so a delta since G holds exactly what changed after
/// the export that returned G.
struct ConnectionTracker: Sendable {
    struct Entry: Sendable {
        var origin: TrafficDirection
        var state: ConnectionState
        var lastSeen: MeshInstant
        var finFlags: UInt8
        var changed: UInt64
    }

    /// The result of judging one packet.
    enum Verdict: Equatable {
        case allowed
        case denied(DropReason)
    }

    /// What changed since a generation (see `delta(since:now:)`).
    struct Delta: Sendable {
        var fromGeneration: UInt64
        var toGeneration: UInt64
        var fullResync: Bool
        var upserts: [TrackedConnection]
        var removals: [ConnectionKey]
    }

    private(set) var entries: [ConnectionKey: Entry] = [:]
    /// Stamp of changes made now; starts at 1 so 0 means "before anything".
    private(set) var generation: UInt64 = 1
    private var tombstones: [(key: ConnectionKey, generation: UInt64)] = []
    /// Removals are recorded once an export happened (nobody asks for deltas otherwise).
    private var recordsRemovals = false
    /// A delta from a base below this cannot be computed (tombstones were dropped): resync.
    private var oldestDeltaBase: UInt64 = 0
    private var lastExpiry = MeshInstant.origin
    let capacity: Int
    let timeouts: ConnectionTimeouts
    static let maxTombstones = 65_536

    init(capacity: Int, timeouts: ConnectionTimeouts) {
        self.capacity = capacity
        self.timeouts = timeouts
    }

    var count: Int { entries.count }

    /// Judges `packet` crossing the port in `direction`, tracking it if allowed.
    mutating func process(_ packet: IPPacketInfo, direction: TrafficDirection, policy: SecurityPolicy,
                          now: MeshInstant) -> Verdict {
        let rules = direction == .egress ? policy.egress : policy.ingress
        let remote = direction == .egress ? packet.destination : packet.source
        switch packet.icmp {
        case .linkLocalControl:
            return .allowed // IPv6 neighbour discovery and MLD: link plumbing, like ARP
        case let .error(embedded):
            // RELATED: an error about a tracked connection passes; otherwise the rules decide.
            if let embedded, entries[ConnectionKey(quoted: embedded, errorDirection: direction)] != nil { return .allowed }
            return rules.allows(proto: packet.proto, destinationPort: 0, remote: remote) ? .allowed : .denied(direction.policyDrop)
        default:
            break
        }
        if packet.isLaterFragment {
            // No transport header: allowed if the rules allow everything, or the addresses have a
            // tracked connection of that protocol.
            if case .allowAll = rules { return .allowed }
            let local = direction == .egress ? packet.source : packet.destination
            let tracked = entries.keys.contains { $0.proto == packet.proto && $0.localIP == local && $0.remoteIP == remote }
            return tracked ? .allowed : .denied(direction.policyDrop)
        }
        let key = ConnectionKey(packet, direction: direction)
        let flags = packet.proto == IPProtocol.tcp ? packet.tcpFlags : 0
        if var entry = entries[key] {
            // A fresh SYN on a closed 5-tuple opens a new connection: judge it as new.
            let reopening = entry.state == .closing && flags & IPPacketInfo.TCPFlag.syn != 0 && flags & IPPacketInfo.TCPFlag.ack == 0
            if !reopening {
                update(&entry, direction: direction, flags: flags, now: now)
                entries[key] = entry
                return .allowed
            }
        }
        // A lone RST opens nothing (and may always go: it only ends things).
        if flags & IPPacketInfo.TCPFlag.rst != 0 { return .allowed }
        if packet.proto == IPProtocol.tcp, !policy.looseTCPPickup,
           flags & (IPPacketInfo.TCPFlag.syn | IPPacketInfo.TCPFlag.ack) != IPPacketInfo.TCPFlag.syn {
            return .denied(.conntrackInvalid)
        }
        guard rules.allows(proto: packet.proto, destinationPort: packet.destinationPort, remote: remote) else {
            return .denied(direction.policyDrop)
        }
        if entries[key] == nil, entries.count >= capacity {
            expire(now: now, force: true)
            if entries.count >= capacity { return .denied(.conntrackFull) }
        }
        var entry = Entry(origin: direction, state: .new, lastSeen: now, finFlags: 0, changed: generation)
        update(&entry, direction: direction, flags: flags, now: now)
        entries[key] = entry
        return .allowed
    }

    private func update(_ entry: inout Entry, direction: TrafficDirection, flags: UInt8, now: MeshInstant) {
        entry.lastSeen = now
        entry.changed = generation
        if direction != entry.origin, entry.state == .new { entry.state = .established }
        guard flags != 0 else { return }
        if flags & IPPacketInfo.TCPFlag.rst != 0 {
            entry.state = .closing
        } else if flags & IPPacketInfo.TCPFlag.fin != 0 {
            entry.finFlags |= direction == .egress ? 1 : 2
            if entry.finFlags == 3 { entry.state = .closing }
        }
    }

    /// Drops idle entries (at most once a second unless `force`).
    mutating func expire(now: MeshInstant, force: Bool = false) {
        guard force || now - lastExpiry >= .seconds(1) else { return }
        lastExpiry = now
        var expired: [ConnectionKey] = []
        for (key, entry) in entries where now - entry.lastSeen > timeouts.timeout(proto: key.proto, state: entry.state) {
            expired.append(key)
        }
        for key in expired { remove(key) }
    }

    private mutating func remove(_ key: ConnectionKey) {
        guard entries.removeValue(forKey: key) != nil, recordsRemovals else { return }
        tombstones.append((key, generation))
        if tombstones.count > Self.maxTombstones {
            let dropped = tombstones.count - Self.maxTombstones
            oldestDeltaBase = tombstones[dropped - 1].generation
            tombstones.removeFirst(dropped)
        }
    }

    // MARK: export and import

    /// Every entry, and the generation the snapshot is complete up to.
    mutating func snapshot(now: MeshInstant) -> (connections: [TrackedConnection], generation: UInt64) {
        recordsRemovals = true
        let result = (entries.map { exported($0.key, $0.value, now: now) }, generation)
        generation += 1
        return result
    }

    /// What changed after the export that returned `base`. A base this table cannot serve
    /// (tombstones dropped, or a base from the future) yields a full resync.
    mutating func delta(since base: UInt64, now: MeshInstant) -> Delta {
        recordsRemovals = true
        let to = generation
        generation += 1
        if base < oldestDeltaBase || base >= to {
            return Delta(fromGeneration: base, toGeneration: to, fullResync: true,
                         upserts: entries.map { exported($0.key, $0.value, now: now) }, removals: [])
        }
        let upserts = entries.filter { $0.value.changed > base }.map { exported($0.key, $0.value, now: now) }
        let removals = tombstones.filter { $0.generation > base }.map(\.key)
        // The consumer has everything up to `base`: older tombstones are no longer needed.
        tombstones.removeAll { $0.generation <= base }
        return Delta(fromGeneration: base, toGeneration: to, fullResync: false, upserts: upserts, removals: removals)
    }

    /// Replaces (`replacing`) or merges imported entries.
    mutating func apply(upserts: [TrackedConnection], removals: [ConnectionKey], replacing: Bool, now: MeshInstant) {
        if replacing { entries.removeAll() }
        for key in removals { remove(key) }
        for connection in upserts {
            entries[connection.key] = Entry(origin: connection.origin, state: connection.state,
                                            lastSeen: now.minus(milliseconds: connection.idleMilliseconds),
                                            finFlags: connection.finFlags, changed: generation)
        }
    }

    /// An entry as exported now.
    func connection(_ key: ConnectionKey, now: MeshInstant) -> TrackedConnection? {
        entries[key].map { exported(key, $0, now: now) }
    }

    private func exported(_ key: ConnectionKey, _ entry: Entry, now: MeshInstant) -> TrackedConnection {
        TrackedConnection(key: key, origin: entry.origin, state: entry.state,
                          idleMilliseconds: now.milliseconds(since: entry.lastSeen), finFlags: entry.finFlags)
    }
}

extension TrafficDirection {
    var policyDrop: DropReason { self == .egress ? .egressPolicy : .ingressPolicy }
}

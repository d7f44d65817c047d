import MeshTime

/// The mesh-wide MAC location table: (MAC, segment) -> host, decided by mobility sequence
/// numbers as in EVPN (RFC 7432 §15): the highest sequence number wins; the same number claimed
/// by two hosts flags a duplicate (the lower host id wins the tie, so every host agrees); a MAC
/// that moves `maxMoves` times within `window` is frozen where it is and reported.
struct LocationTable: Sendable {
    struct Key: Hashable, Sendable {
        var mac: MACAddress
        var segment: SegmentID
    }

    struct Record: Sendable {
        var entry: LocationEntry
        /// Instants of host changes within the detection window.
        var moves: [MeshInstant]
        /// Sequence number a duplicate was last reported at (report once per number).
        var reportedDuplicate: UInt64?
    }

    /// What applying one update did.
    enum Outcome: Equatable {
        /// The entry is new, or changed host (`movedFrom`), or was refreshed by its host.
        case accepted(movedFrom: HostID?)
        /// The MAC moved once too often: frozen at the new place.
        case frozen(moves: Int)
        /// Same sequence number, different host: flagged. `hosts` are the two claimants.
        case duplicate(hosts: [HostID], newlyReported: Bool)
        /// `host` withdrew its claim; the entry is gone.
        case withdrawn
        /// Older than what is known, or a withdrawal by a host that is not the owner.
        case stale
        /// The MAC is frozen; the update was ignored.
        case ignoredFrozen
    }

    private(set) var records: [Key: Record] = [:]
    /// Per segment: remote hosts holding at least one MAC there, with how many (the flood list).
    private(set) var segmentHosts: [SegmentID: [HostID: Int]] = [:]
    /// Per segment: IP -> MAC for every bound address (proxy ARP).
    private var addresses: [SegmentID: [IPAddress: MACAddress]] = [:]
    let localHost: HostID
    let maxMoves: Int
    let window: Duration

    init(localHost: HostID, maxMoves: Int, window: Duration) {
        self.localHost = localHost
        self.maxMoves = maxMoves
        self.window = window
    }

    func entry(mac: MACAddress, segment: SegmentID) -> LocationEntry? {
        records[Key(mac: mac, segment: segment)]?.entry
    }

    /// Remote hosts that have a MAC on `segment`, sorted.
    func floodHosts(segment: SegmentID) -> [HostID] {
        (segmentHosts[segment]?.keys).map { $0.sorted() } ?? []
    }

    /// The MAC bound to `ip` on `segment`, if any.
    func mac(for ip: IPAddress, segment: SegmentID) -> MACAddress? {
        addresses[segment]?[ip]
    }

    /// Applies one update.
    mutating func apply(_ update: MACLocation, now: MeshInstant) -> Outcome {
        let key = Key(mac: update.mac, segment: update.segment)
        guard var record = records[key] else {
            if update.withdrawn { return .stale }
            insert(key, Record(entry: LocationEntry(location: update, duplicate: false, frozen: false), moves: [], reportedDuplicate: nil))
            return .accepted(movedFrom: nil)
        }
        let current = record.entry.location
        if update.host == current.host {
            guard update.sequence >= current.sequence else { return .stale }
            if update.withdrawn {
                remove(key)
                return .withdrawn
            }
            record.entry.location = update
            replace(key, record)
            return .accepted(movedFrom: nil)
        }
        if record.entry.frozen { return .ignoredFrozen }
        if update.withdrawn || update.sequence < current.sequence { return .stale }
        if update.sequence == current.sequence {
            // A tie: flagged on both claimants; the lower host id holds the entry everywhere.
            let hosts = [current.host, update.host].sorted()
            let newlyReported = record.reportedDuplicate != update.sequence
            record.reportedDuplicate = update.sequence
            record.entry.duplicate = true
            if update.host < current.host { record.entry.location = update }
            replace(key, record)
            return .duplicate(hosts: hosts, newlyReported: newlyReported)
        }
        // A move.
        record.moves = record.moves.filter { now - $0 < window } + [now]
        record.entry.location = update
        record.entry.duplicate = false
        if record.moves.count >= maxMoves {
            record.entry.frozen = true
            replace(key, record)
            return .frozen(moves: record.moves.count)
        }
        replace(key, record)
        return .accepted(movedFrom: current.host)
    }

    /// Clears a frozen or duplicate flag (operator action) and forgets the move history.
    mutating func clearFlags(mac: MACAddress, segment: SegmentID) -> Bool {
        let key = Key(mac: mac, segment: segment)
        guard var record = records[key] else { return false }
        record.entry.frozen = false
        record.entry.duplicate = false
        record.moves = []
        record.reportedDuplicate = nil
        replace(key, record)
        return true
    }

    /// Forgets every entry of `host` (the host left the mesh). Returns the removed locations.
    mutating func forget(host: HostID) -> [MACLocation] {
        let keys = records.filter { $0.value.entry.location.host == host }.map(\.key)
        return keys.compactMap { key in
            let location = records[key]?.entry.location
            remove(key)
            return location
        }
    }

    /// All entries, sorted by segment then MAC.
    var entries: [LocationEntry] {
        records.values.map(\.entry).sorted { ($0.location.segment, $0.location.mac) < ($1.location.segment, $1.location.mac) }
    }

    // MARK: indexes

    private mutating func insert(_ key: Key, _ record: Record) {
        records[key] = record
        index(record.entry.location, add: true)
    }

    private mutating func replace(_ key: Key, _ record: Record) {
        if let old = records[key] { index(old.entry.location, add: false) }
        records[key] = record
        index(record.entry.location, add: true)
    }

    private mutating func remove(_ key: Key) {
        guard let old = records.removeValue(forKey: key) else { return }
        index(old.entry.location, add: false)
    }

    private mutating func index(_ location: MACLocation, add: Bool) {
        if location.host != localHost {
            var hosts = segmentHosts[location.segment, default: [:]]
            let count = hosts[location.host, default: 0] + (add ? 1 : -1)
            hosts[location.host] = count > 0 ? count : nil
            segmentHosts[location.segment] = hosts.isEmpty ? nil : hosts
        }
        var bound = addresses[location.segment, default: [:]]
        for ip in location.ips {
            if add {
                bound[ip] = location.mac
            } else if bound[ip] == location.mac {
                bound[ip] = nil
            }
        }
        addresses[location.segment] = bound.isEmpty ? nil : bound
    }
}

/// A replicated record set (Protocol.md §10.3): keyed records that any agent may write, spread
/// by anti-entropy, merged everywhere the same way. Last writer wins per key, ordered by
/// (version, writer host id); a deletion is a tombstone that wins like a write, so a deleted
/// rule does not come back from a host that missed the deletion. Pure: no I/O, no clock.
public struct ReplicatedRecords<Body: Sendable & Hashable>: Sendable, Hashable {
    public struct Record: Sendable, Hashable {
        public var key: String
        public var version: UInt64
        /// Host id of the agent that wrote this version.
        public var writer: String
        /// nil: deleted (a tombstone).
        public var body: Body?

        public init(key: String, version: UInt64, writer: String, body: Body?) {
            self.key = key
            self.version = version
            self.writer = writer
            self.body = body
        }

        /// Whether this version supersedes `other` of the same key.
        public func supersedes(_ other: Record) -> Bool { (version, writer) > (other.version, other.writer) }
    }

    public private(set) var records: [String: Record] = [:]

    public init(_ records: [Record] = []) {
        for record in records { _ = merge(record) }
    }

    /// The live (not deleted) bodies, by key.
    public var live: [String: Body] { records.compactMapValues(\.body) }

    /// Every record, tombstones included, in key order (what anti-entropy sends).
    public var all: [Record] { records.values.sorted { $0.key < $1.key } }

    /// Writes `body` (nil deletes) under `key` as `writer`: the version is one above any this
    /// replica has seen for the key, so the write supersedes everything it knows.
    public mutating func write(_ key: String, _ body: Body?, writer: String) -> Record {
        let record = Record(key: key, version: (records[key]?.version ?? 0) + 1, writer: writer, body: body)
        records[key] = record
        return record
    }

    /// Merges one received record; returns true if it changed this replica.
    public mutating func merge(_ record: Record) -> Bool {
        if let current = records[record.key], !record.supersedes(current) { return false }
        records[record.key] = record
        return true
    }

    /// Merges received records; returns the ones that changed this replica (to persist).
    public mutating func merge(_ incoming: [Record]) -> [Record] {
        incoming.filter { merge($0) }
    }
}

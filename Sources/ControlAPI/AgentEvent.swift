import Foundation

/// One thing that happened, as `hostmesh events` streams it (Protocol.md §7, method `events`).
public struct AgentEvent: Codable, Sendable, Equatable {
    /// When this agent saw it: RFC 3339, UTC, milliseconds.
    public var time: String
    /// What happened: `member.alive`, `member.suspect`, `member.dead`, `member.left`,
    /// `migration.<role>.<phase>` (e.g. `migration.source.committing`, `migration.source.released`,
    /// `migration.destination.committed`), `migration.progress` (an outgoing migration's progress,
    /// at most four a second per migration and at every change of phase), `drs.move.started|completed|failed`
    /// (a DRS move of this host's VM; `peer` the destination), `drs.placed` (a VM this host placed; `peer` where).
    public var kind: String
    /// The host that reports it.
    public var host: String
    /// The member a `member.*` event is about, or the other side of a migration.
    public var peer: String?
    /// The VM a `migration.*` event is about (its name) and its id.
    public var vm: String?
    public var vmID: String?
    /// The migration's id.
    public var migration: String?
    /// With kind `migration.progress`: where an outgoing migration is (as `migrate` streams it).
    public var progress: MigrationProgressUpdate?

    public init(time: String, kind: String, host: String, peer: String? = nil, vm: String? = nil, vmID: String? = nil, migration: String? = nil,
                progress: MigrationProgressUpdate? = nil) {
        self.time = time
        self.kind = kind
        self.host = host
        self.peer = peer
        self.vm = vm
        self.vmID = vmID
        self.migration = migration
        self.progress = progress
    }

    /// One line for people: `time kind key=value ...`.
    public var line: String {
        var parts = [time, kind, "host=\(host)"]
        if let peer { parts.append("peer=\(peer)") }
        if let vm { parts.append("vm=\(vm)") }
        if let migration { parts.append("migration=\(migration)") }
        if let progress {
            parts.append("phase=\(progress.phase)")
            parts.append(String(format: "percent=%.1f", progress.percent))
            parts.append(String(format: "mb_per_second=%.1f", progress.mbPerSecond))
            parts.append("round=\(progress.iteration)")
            if let rtt = progress.rttMs { parts.append(String(format: "rtt_ms=%.1f", rtt)) }
            if let use = progress.linkUse { parts.append(String(format: "link_use=%.2f", use)) }
        }
        return parts.joined(separator: " ")
    }
}

public import ControlAPI

/// A migration this host takes part in, as the agent's events show it: started from the page,
/// the command line, DRS, maintenance or a schedule alike. Sent to the page as the `migration`
/// event at each change, and kept in the snapshot's `live`.
public struct LiveMigration: Codable, Sendable, Equatable {
    /// The migration's id.
    public var migration: String
    /// The VM's name.
    public var vm: String
    /// `source` or `destination`: this host's side.
    public var role: String
    /// The other side (host id, or the address it was reached at).
    public var peer: String
    /// The last journaled phase (`transferring`, `committing`, `done`, `running`, …) or, on the
    /// source, the progress phase (`prepare`, `transfer`, `switchover`, …).
    public var phase: String
    /// The source's last progress line (nil on the destination, which sees no progress).
    public var progress: MigrationProgressUpdate?
    /// True once it ended: released, done or aborted on the source; running or discarded on
    /// the destination.
    public var ended: Bool
    /// When the last event about it came (RFC 3339 UTC).
    public var time: String

    /// Journaled phases after which nothing more happens to a migration on that side.
    static let endings: Set<String> = ["migration.source.done", "migration.source.released", "migration.source.aborted",
                                       "migration.destination.running", "migration.destination.discarded"]

    /// `self` changed by `event` about the same migration, or a new entry from it; nil for an
    /// event that is not about a migration.
    static func following(_ previous: LiveMigration?, _ event: AgentEvent) -> LiveMigration? {
        guard event.kind.hasPrefix("migration."), let id = event.migration else { return nil }
        var next = previous ?? LiveMigration(migration: id, vm: event.vm ?? "", role: "", peer: event.peer ?? "", phase: "", progress: nil,
                                             ended: false, time: event.time)
        next.time = event.time
        if let vm = event.vm, !vm.isEmpty { next.vm = vm }
        if let peer = event.peer, !peer.isEmpty { next.peer = peer }
        if event.kind == "migration.progress", let progress = event.progress {
            next.role = "source"
            next.progress = progress
            // Progress after the end (none is sent) would not reopen it.
            if !next.ended { next.phase = progress.phase }
            return next
        }
        let parts = event.kind.split(separator: ".")
        guard parts.count >= 3 else { return nil }
        next.role = String(parts[1])
        next.phase = parts[2...].joined(separator: ".")
        if endings.contains(event.kind) { next.ended = true }
        return next
    }
}

import ControlAPI
import MigrationService
import Synchronization

/// Passes every migration point to the configured observer (test hooks in tests, none in
/// production) and publishes it as a `migration.<role>.<phase>` event; publishes outgoing
/// migrations' progress as `migration.progress` events, thinned by `ProgressThinner`.
struct EventPublishingObserver: MigrationObserver {
    let inner: any MigrationObserver
    let events: AgentEventHub
    let thinner = ProgressThinner()

    func reached(_ point: MigrationPoint) async { await inner.reached(point) }

    func cutsChannel(at point: MigrationPoint) -> Bool { inner.cutsChannel(at: point) }

    func reached(_ point: MigrationPoint, migration: String, vm: String, name: String, peer: String) async {
        events.publish("migration." + "\(point)".replacingOccurrences(of: ":", with: "."), peer: peer, vm: name, vmID: vm, migration: migration)
        await inner.reached(point, migration: migration, vm: vm, name: name, peer: peer)
    }

    func progressed(_ update: MigrationProgressUpdate, migration: String, vm: String, name: String, peer: String) async {
        if thinner.passes(update, migration: migration, now: ContinuousClock.now) {
            events.publish("migration.progress", peer: peer, vm: name, vmID: vm, migration: migration, progress: update)
        }
        await inner.progressed(update, migration: migration, vm: vm, name: name, peer: peer)
    }
}

/// Lets through a migration's progress line when its phase changed or `interval` passed since
/// the last one let through, so subscribers see at most a few lines a second per migration.
final class ProgressThinner: Sendable {
    let interval: Duration
    /// Per migration: the last phase and when a line was let through. Entries older than a minute
    /// are dropped at each call (a migration that ended sends no more lines).
    private let last = Mutex<[String: (phase: String, at: ContinuousClock.Instant)]>([:])

    init(interval: Duration = .milliseconds(250)) { self.interval = interval }

    func passes(_ update: MigrationProgressUpdate, migration: String, now: ContinuousClock.Instant) -> Bool {
        last.withLock { last in
            if last.count > 64 { last = last.filter { now - $0.value.at < .seconds(60) } }
            if let previous = last[migration], previous.phase == update.phase, now - previous.at < interval { return false }
            last[migration] = (update.phase, now)
            return true
        }
    }
}

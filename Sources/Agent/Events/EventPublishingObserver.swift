import MigrationService

/// Passes every migration point to the configured observer (test hooks in tests, none in
/// production) and publishes it as a `migration.<role>.<phase>` event.
struct EventPublishingObserver: MigrationObserver {
    let inner: any MigrationObserver
    let events: AgentEventHub

    func reached(_ point: MigrationPoint) async { await inner.reached(point) }

    func cutsChannel(at point: MigrationPoint) -> Bool { inner.cutsChannel(at: point) }

    func reached(_ point: MigrationPoint, migration: String, vm: String, name: String, peer: String) async {
        events.publish("migration." + "\(point)".replacingOccurrences(of: ":", with: "."), peer: peer, vm: name, vmID: vm, migration: migration)
        await inner.reached(point, migration: migration, vm: vm, name: name, peer: peer)
    }
}

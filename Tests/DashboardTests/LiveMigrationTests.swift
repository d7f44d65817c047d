import ControlAPI
@testable import Dashboard
import Testing

/// How the dashboard folds the agent's events into one entry per migration.
struct LiveMigrationTests {
    func event(_ kind: String, _ migration: String? = "m-1", progress: MigrationProgressUpdate? = nil, time: String = "t") -> AgentEvent {
        AgentEvent(time: time, kind: kind, host: "node-b", peer: "node-a", vm: "web", vmID: "1", migration: migration, progress: progress)
    }

    @Test func aDestinationsPhasesEndAtRunningAndAnEventOfNoMigrationIsIgnored() {
        #expect(LiveMigration.following(nil, event("member.alive", nil)) == nil)
        #expect(LiveMigration.following(nil, event("migration.destination.admitted", nil)) == nil) // no id: nothing to key it by
        let admitted = LiveMigration.following(nil, event("migration.destination.admitted"))
        #expect(admitted?.role == "destination" && admitted?.phase == "admitted" && admitted?.ended == false && admitted?.peer == "node-a")
        let committed = LiveMigration.following(admitted, event("migration.destination.committed"))
        #expect(committed?.ended == false)
        let running = LiveMigration.following(committed, event("migration.destination.running", time: "u"))
        #expect(running?.ended == true && running?.phase == "running" && running?.time == "u")
    }

    @Test func aSourcesProgressIsKeptAndALateLineDoesNotReopenIt() {
        let transfer = MigrationProgressUpdate(phase: "transfer", percent: 55, mbPerSecond: 10, dirtyMBPerSecond: 1, iteration: 2, rung: "normal")
        let moving = LiveMigration.following(nil, event("migration.progress", progress: transfer))
        #expect(moving?.role == "source" && moving?.phase == "transfer" && moving?.progress?.percent == 55)
        let aborted = LiveMigration.following(moving, event("migration.source.aborted"))
        #expect(aborted?.ended == true && aborted?.phase == "aborted")
        let late = LiveMigration.following(aborted, event("migration.progress", progress: transfer))
        #expect(late?.ended == true && late?.phase == "aborted")
    }

    @Test func theHubKeepsTheNewestAndTellsNewPagesAtOnce() async {
        let hub = DashboardHub()
        for n in 0..<(DashboardHub.liveKept + 5) {
            await hub.follow(event("migration.source.done", "m-\(n)"))
        }
        let kept = await hub.liveMigrations
        #expect(kept.count == DashboardHub.liveKept && kept.first?.migration == "m-5" && kept.last?.migration == "m-\(DashboardHub.liveKept + 4)")
        let (_, stream) = await hub.subscribe()
        var names: [String] = []
        for await event in stream {
            names.append(event.name)
            if names.count == DashboardHub.liveKept { break }
        }
        #expect(names == Array(repeating: "migration", count: DashboardHub.liveKept))
        await hub.close()
    }
}

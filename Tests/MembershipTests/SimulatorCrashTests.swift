import Membership
import MeshSimulator
import Testing

@Suite("Simulator: crash detection and join at 1,000 members")
struct SimulatorCrashTests {
    @Test("a crashed member is known dead by every live member within 20 s")
    func crashKnownDeadByAllWithin20Seconds() {
        let seed: UInt64 = 0x5EED_0001
        print("seed \(seed)")
        let clock = ContinuousClock()
        let started = clock.now
        let simulation = Simulation(members: 1000, seed: seed)
        print("built in \(clock.now - started)")
        simulation.run(for: .seconds(5))
        print("5 s run in \(clock.now - started), events \(simulation.eventsProcessed)")
        let victim = 417
        let crashedAt = simulation.now
        var firstSuspicion: MembershipInstant?
        var deadCount = 0
        var allDeadAt: MembershipInstant?
        simulation.observeStatusChanges { event in
            guard event.subject == victim else { return }
            if event.change.member.status == .suspect, firstSuspicion == nil { firstSuspicion = event.time }
            if event.change.member.status == .dead {
                deadCount += 1
                if deadCount == 999 {
                    allDeadAt = event.time
                    simulation.stop()
                }
            }
        }
        simulation.crash(victim)
        simulation.run(until: crashedAt + .seconds(60))
        print("done in \(clock.now - started), events \(simulation.eventsProcessed)")
        let suspectAfter = firstSuspicion.map { $0 - crashedAt }
        let deadAfter = allDeadAt.map { $0 - crashedAt }
        print("seed \(seed): first suspicion after \(String(describing: suspectAfter)), all dead after \(String(describing: deadAfter))")
        #expect(deadAfter != nil && deadAfter! <= .seconds(20), "seed \(seed): all dead after \(String(describing: deadAfter))")
    }
}

import Membership
import MeshSimulator
import MeshTime
import Testing

@Suite("Simulator: crash detection and join at 1,000 members")
struct SimulatorCrashTests {
    @Test("a crashed member is known dead by every live member within 20 s")
    func crashKnownDeadByAllWithin20Seconds() {
        let seed: UInt64 = 0x5EED_0001
        print("seed \(seed): 1,000 members, crash one")
        let simulation = Simulation(members: 1000, seed: seed)
        simulation.run(for: .seconds(5))
        let victim = 417
        let crashedAt = simulation.now
        var firstSuspicion: MeshInstant?
        var deadCount = 0
        var allDeadAt: MeshInstant?
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
        let suspectAfter = firstSuspicion.map { $0 - crashedAt }
        let deadAfter = allDeadAt.map { $0 - crashedAt }
        print("seed \(seed): first suspicion after \(String(describing: suspectAfter)), all dead after \(String(describing: deadAfter))")
        #expect(deadAfter != nil, "seed \(seed): only \(deadCount) of 999 marked the crashed member dead in 60 s")
        #expect(deadAfter.map { $0 <= .seconds(20) } == true, "seed \(seed): all dead after \(String(describing: deadAfter))")
        // No one else was declared dead on the way.
        #expect(simulation.runningMembers.count == 999)
    }

    @Test("a join is known by every member within 10 s")
    func joinKnownByAllWithin10Seconds() {
        let seed: UInt64 = 0x5EED_0002
        print("seed \(seed): 1,000 members, one joins")
        let simulation = Simulation(members: 1000, seed: seed)
        simulation.run(for: .seconds(3))
        let joinedAt = simulation.now
        var knownBy = 0
        var allKnowAt: MeshInstant?
        let newcomer = 1000
        simulation.observeStatusChanges { event in
            guard event.subject == newcomer, event.change.member.status == .alive, event.change.previousStatus == nil else { return }
            knownBy += 1
            if knownBy == 1000 {
                allKnowAt = event.time
                simulation.stop()
            }
        }
        let index = simulation.addMember(joiningThrough: [123])
        #expect(index == newcomer)
        simulation.run(until: joinedAt + .seconds(30))
        let after = allKnowAt.map { $0 - joinedAt }
        print("seed \(seed): join known by all after \(String(describing: after))")
        #expect(after.map { $0 <= .seconds(10) } == true, "seed \(seed): \(knownBy) of 1000 knew the newcomer; all after \(String(describing: after))")
        // The newcomer knows everyone too (it got the seed's full state).
        #expect(simulation.instance(of: newcomer).liveMemberCount == 1000)
    }
}

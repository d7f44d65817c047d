import Membership
import MeshSimulator
import MeshTime
import Testing

@Suite("Simulator: loss, partitions, pauses, metadata")
struct SimulatorFaultTests {
    @Test("100 members at 10% packet loss for 10 simulated minutes: no live member is ever declared dead")
    func noFalseDeathsUnderLoss() {
        let seed: UInt64 = 0x5EED_0003
        print("seed \(seed): 100 members, 10% loss, 600 s")
        let simulation = Simulation(members: 100, network: .lossy(0.10), seed: seed)
        var falseDeaths: [SimulatedStatusChange] = []
        var suspicions = 0
        simulation.observeStatusChanges { event in
            switch event.change.member.status {
            case .dead: falseDeaths.append(event)
            case .suspect: suspicions += 1
            default: break
            }
        }
        simulation.run(for: .seconds(600))
        let health = (0..<100).map { simulation.instance(of: $0).localHealthScore }
        print("seed \(seed): \(suspicions) suspect transitions seen by observers, all refuted; \(falseDeaths.count) false deaths; max local health \(health.max() ?? 0)")
        #expect(falseDeaths.isEmpty, "seed \(seed): first false death \(String(describing: falseDeaths.first))")
        for observer in 0..<100 {
            #expect(simulation.instance(of: observer).liveMemberCount == 99, "seed \(seed): member \(observer) lost someone")
        }
    }

    @Test("a partition heals: both sides, having declared each other dead, converge back to one mesh")
    func partitionHeals() {
        let seed: UInt64 = 0x5EED_0004
        print("seed \(seed): 40 members split 25/15 for 90 s")
        let simulation = Simulation(members: 40, seed: seed)
        simulation.run(for: .seconds(5))
        let sideA = Array(0..<25)
        let sideB = Array(25..<40)
        simulation.partition([sideA, sideB])
        simulation.run(for: .seconds(90))
        // Each side has given up on the other.
        #expect(simulation.observerCount(seeing: 0, as: .dead) == 15, "seed \(seed)")
        #expect(simulation.observerCount(seeing: 30, as: .dead) == 25, "seed \(seed)")
        simulation.healPartition()
        let healedAt = simulation.now
        var convergedAt: MeshInstant?
        while simulation.now < healedAt + .seconds(300) {
            simulation.run(for: .seconds(1))
            if (0..<40).allSatisfy({ simulation.instance(of: $0).liveMemberCount == 39 }) {
                convergedAt = simulation.now
                break
            }
        }
        let after = convergedAt.map { $0 - healedAt }
        print("seed \(seed): converged \(String(describing: after)) after the heal")
        #expect(after != nil, "seed \(seed): not converged 300 s after the heal")
        // Every member is alive in every view, at incarnations above the ones they died at.
        for observer in 0..<40 {
            for subject in 0..<40 where subject != observer {
                #expect(simulation.status(of: subject, seenBy: observer) == .known(.alive), "seed \(seed): \(observer) sees \(subject)")
            }
        }
    }

    @Test("a paused member is suspected, then refutes the suspicion when it resumes, and is never declared dead")
    func pausedMemberRefutes() {
        let seed: UInt64 = 0x5EED_0005
        print("seed \(seed): 50 members, one paused for 4 s")
        let simulation = Simulation(members: 50, seed: seed)
        simulation.run(for: .seconds(5))
        let sleeper = 7
        var suspected = 0
        var deaths = 0
        simulation.observeStatusChanges { event in
            guard event.subject == sleeper else { return }
            if event.change.member.status == .suspect { suspected += 1 }
            if event.change.member.status == .dead { deaths += 1 }
        }
        simulation.pause(sleeper, for: .seconds(4))
        simulation.run(for: .seconds(4))
        #expect(suspected > 0, "seed \(seed): nobody noticed the pause")
        simulation.run(for: .seconds(10))
        print("seed \(seed): \(suspected) suspicions of the paused member, \(deaths) deaths, incarnation now \(simulation.instance(of: sleeper).incarnation)")
        #expect(deaths == 0, "seed \(seed)")
        #expect(simulation.instance(of: sleeper).incarnation >= 1, "seed \(seed): it never refuted")
        #expect(simulation.observerCount(seeing: sleeper, as: .alive) == 49, "seed \(seed)")
    }

    @Test("a member paused longer than the suspicion timeout is declared dead, then comes back with a higher incarnation")
    func longPauseRejoins() {
        let seed: UInt64 = 0x5EED_0006
        print("seed \(seed): 30 members, one paused for 40 s")
        let simulation = Simulation(members: 30, seed: seed)
        simulation.run(for: .seconds(3))
        simulation.pause(3, for: .seconds(40))
        simulation.run(for: .seconds(39))
        #expect(simulation.observerCount(seeing: 3, as: .dead) == 29, "seed \(seed)")
        simulation.run(for: .seconds(20))
        #expect(simulation.observerCount(seeing: 3, as: .alive) == 29, "seed \(seed)")
        #expect(simulation.instance(of: 3).incarnation >= 1, "seed \(seed)")
    }

    @Test("metadata changes reach every member within seconds")
    func metadataSpreads() {
        let seed: UInt64 = 0x5EED_0007
        print("seed \(seed): 200 members, one changes metadata")
        let simulation = Simulation(members: 200, seed: seed)
        simulation.run(for: .seconds(2))
        var metadata = Simulation.metadata(5)
        metadata.maintenance = true
        metadata.runningVMs = 0
        simulation.updateMetadata(5, metadata)
        simulation.run(for: .seconds(3))
        let id = simulation.id(of: 5)
        let current = (0..<200).filter { $0 != 5 }.filter {
            simulation.instance(of: $0).member(id)?.metadata?.maintenance == true
        }
        #expect(current.count == 199, "seed \(seed): only \(current.count) of 199 have the new metadata after 3 s")
    }

    @Test("a graceful leave is seen as left (not dead) by everyone")
    func gracefulLeave() {
        let seed: UInt64 = 0x5EED_0008
        print("seed \(seed): 100 members, one leaves")
        let simulation = Simulation(members: 100, seed: seed)
        simulation.run(for: .seconds(2))
        simulation.leave(9)
        simulation.run(for: .seconds(5))
        #expect(!simulation.isRunning(9), "seed \(seed): leave never completed")
        #expect(simulation.observerCount(seeing: 9, as: .left) == 99, "seed \(seed)")
        simulation.run(for: .seconds(30))
        #expect(simulation.observerCount(seeing: 9, as: .left) == 99, "seed \(seed)")
    }

    @Test("a mesh formed by joins through seeds converges; same seed, same run; cached sizes equal real encodings")
    func formationIsDeterministic() {
        let seed: UInt64 = 0x5EED_0009
        print("seed \(seed): 60 members join through seeds at 2% loss, twice with sizes counted, once encoded and decoded")
        func run(_ fidelity: SimulatedWireFidelity) -> (changes: Int, bytes: Int, live: [Int]) {
            let simulation = Simulation(
                members: 60, network: .lossy(0.02), seed: seed, bootstrap: .joinThroughSeeds, fidelity: fidelity)
            var changes = 0
            simulation.observeStatusChanges { _ in changes += 1 }
            simulation.run(for: .seconds(20))
            let bytes = (0..<60).reduce(0) { $0 + simulation.traffic(of: $1).bytesSent }
            let largest = (0..<60).map { simulation.traffic(of: $0).largestDatagram }.max() ?? 0
            #expect(largest <= 1200, "seed \(seed): a datagram of \(largest) bytes")
            return (changes, bytes, (0..<60).map { simulation.instance(of: $0).liveMemberCount })
        }
        let first = run(.encodeForSize)
        #expect(first.live.allSatisfy { $0 == 59 }, "seed \(seed): \(first.live)")
        let second = run(.encodeForSize)
        #expect(first.changes == second.changes && first.bytes == second.bytes, "seed \(seed): runs differ")
        // Full encode + decode of every datagram: the same run, byte for byte.
        let encoded = run(.roundTrip)
        #expect(encoded.changes == first.changes && encoded.bytes == first.bytes, "seed \(seed): \(encoded) vs \(first)")
    }

    @Test("a slow member (300 ms extra each way) is not declared dead")
    func slowMemberSurvives() {
        let seed: UInt64 = 0x5EED_000A
        print("seed \(seed): 50 members, one slow")
        let simulation = Simulation(members: 50, seed: seed)
        simulation.setSlowness(4, extraDelay: .milliseconds(300))
        var deaths = 0
        simulation.observeStatusChanges { if $0.change.member.status == .dead { deaths += 1 } }
        simulation.run(for: .seconds(120))
        #expect(deaths == 0, "seed \(seed)")
        #expect(simulation.observerCount(seeing: 4, as: .alive) == 49, "seed \(seed)")
    }
}

@Suite("Simulator: signed membership (Protocol.md §4.16)")
struct SimulatorSignedClaimsTests {
    @Test("100 members at 10% packet loss for 10 simulated minutes with signed claims: no false death, no claim dropped")
    func noFalseDeathsWithSignatures() {
        let seed: UInt64 = 0x5EED_0017
        print("seed \(seed): 100 members, 10% loss, 600 s, signed claims")
        let simulation = Simulation(members: 100, network: .lossy(0.10), seed: seed, signedClaims: true)
        var falseDeaths: [SimulatedStatusChange] = []
        var suspicions = 0
        simulation.observeStatusChanges { event in
            switch event.change.member.status {
            case .dead: falseDeaths.append(event)
            case .suspect: suspicions += 1
            default: break
            }
        }
        simulation.run(for: .seconds(600))
        let rejected = (0..<100).reduce(0) { $0 + simulation.traffic(of: $1).claimsRejected.values.reduce(0, +) }
        print("seed \(seed): \(suspicions) suspect transitions, all refuted; \(falseDeaths.count) false deaths; \(rejected) claims rejected")
        #expect(falseDeaths.isEmpty, "seed \(seed): first false death \(String(describing: falseDeaths.first))")
        #expect(suspicions > 0, "seed \(seed): the loss should cause suspicions that signed refutations clear")
        #expect(rejected == 0, "seed \(seed): every claim is signed by its author")
        for observer in 0..<100 {
            #expect(simulation.instance(of: observer).liveMemberCount == 99, "seed \(seed): member \(observer) lost someone")
        }
    }

    @Test("with signed claims, 30 members joining one after another through seeds converge, and a crash is still detected")
    func joinConvergesWithSignatures() {
        let seed: UInt64 = 0x5EED_0018
        print("seed \(seed): 30 members join through seeds, signed claims")
        let simulation = Simulation(members: 30, seed: seed, bootstrap: .joinThroughSeeds, signedClaims: true)
        simulation.run(for: .seconds(30))
        for observer in 0..<30 {
            #expect(simulation.instance(of: observer).liveMemberCount == 29, "seed \(seed): member \(observer) knows \(simulation.instance(of: observer).liveMemberCount)")
        }
        simulation.crash(7)
        simulation.run(for: .seconds(30))
        #expect(simulation.observerCount(seeing: 7, as: .dead) == 29, "seed \(seed)")
    }

    @Test("with signed claims, a metadata update spreads by gossip alone, and every copy verifies")
    func signedMetadataSpreadsByGossip() {
        let seed: UInt64 = 0x5EED_0019
        print("seed \(seed): 100 members, signed claims, member 5 updates its metadata twice")
        let simulation = Simulation(members: 100, seed: seed, signedClaims: true)
        simulation.run(for: .seconds(2))
        let id = simulation.id(of: 5)
        for runningVMs in [UInt32(7), 3] {
            var metadata = Simulation.metadata(5)
            metadata.runningVMs = runningVMs
            simulation.updateMetadata(5, metadata)
            // Well under the push-pull interval: only the broadcast can carry it there.
            simulation.run(for: .seconds(3))
            let current = (0..<100).filter { $0 != 5 }.filter {
                simulation.instance(of: $0).member(id)?.metadata?.runningVMs == runningVMs
            }
            #expect(current.count == 99, "seed \(seed): only \(current.count) of 99 have runningVMs \(runningVMs) after 3 s")
        }
        let rejected = (0..<100).reduce(0) { $0 + simulation.traffic(of: $1).claimsRejected.values.reduce(0, +) }
        #expect(rejected == 0, "seed \(seed): \(rejected) claims rejected; the owner's metadata broadcast must carry its own signature")
    }
}

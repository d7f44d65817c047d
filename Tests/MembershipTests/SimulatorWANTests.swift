import Membership
import MeshSimulator
import MeshTime
import Testing

/// Membership over a WAN (Protocol.md §4.11.1): two sites 150 ms apart, 1% loss on every
/// datagram, the WAN profile for a 150 ms round trip.
@Suite("Simulator: two sites 150 (and 250) ms apart, WAN profile")
struct SimulatorWANTests {
    /// Sites A = {0, 1} and B = {2, 3, 4}, half the round trip each way between them (plus the simulator's
    /// 1-4 ms per link and up to 1 ms of jitter), 1% loss.
    static func twoSites(seed: UInt64, settings: MembershipSettings, rttMs: Int = 150) -> Simulation {
        var network = SimulatedNetwork.lossy(0.01)
        network.interSiteDelay = .milliseconds(Int64(rttMs / 2))
        let simulation = Simulation(members: 5, settings: settings, network: network, seed: seed)
        simulation.placeInSites([[0, 1], [2, 3, 4]])
        return simulation
    }

    /// The bound a crash is known dead by all within, from the profile: the crashed member is
    /// probed by one of the four others within two probe periods (each probes the others in
    /// turn, one of them soon) and that probe fails at the end of its period; with five members
    /// Lifeguard expects no confirmations (k = SuspicionMult - 2 = 4 > n - 2, §4.7), so the
    /// suspicion times out at its minimum, 6 * max(1, log10 5) * 1.3 s = 7.8 s; then three
    /// periods for the death to reach everyone with 1% loss and a slow path across the link, and
    /// two more of margin. WAN at 150 ms: 2 * 1.3 + 7.8 + 5 * 1.3 = 16.9 s.
    static func crashBound(_ settings: MembershipSettings) -> Duration {
        settings.probeInterval * 2 + settings.minimumSuspicionTimeout(memberCount: 5) + settings.probeInterval * 5
    }

    @Test("the WAN profile's timings at 150 and 250 ms, and no faster than LAN at a short round trip", arguments: [
        (150, 1_300, 500, 400), (250, 1_700, 700, 500), (1, 1_200, 500, 400),
    ])
    func profileTimings(rtt: Int, interval: Int, timeout: Int, nack: Int) {
        let settings = MembershipSettings.wan(roundTrip: .milliseconds(rtt))
        #expect(settings.probeInterval == .milliseconds(interval))
        #expect(settings.probeTimeout == .milliseconds(timeout))
        #expect(settings.indirectNackTimeout == .milliseconds(nack))
        #expect(settings.suspicionMultiplier == 6 && settings.gossipFanout == 4 && settings.pushPullInterval == .seconds(60))
        // The worst indirect probe (ping-req across, a nack back across) ends inside the period.
        #expect(settings.probeTimeout + .milliseconds(rtt) + settings.indirectNackTimeout < settings.probeInterval)
    }

    @Test("5 agents, 10 virtual minutes, 1% loss: zero false deaths (three seeds at 150 ms, one at 250 ms)", arguments: [
        (UInt64(0x3A17_0150), 150), (0x3A17_0151, 150), (0x3A17_0152, 150), (0x3A17_0250, 250),
    ])
    func noFalseDeaths(seed: UInt64, rttMs: Int) {
        print("seed \(seed): 5 members in two sites \(rttMs) ms apart, 1% loss, WAN profile, 600 s")
        let simulation = Self.twoSites(seed: seed, settings: .wan(roundTrip: .milliseconds(rttMs)), rttMs: rttMs)
        var deaths: [SimulatedStatusChange] = []
        var suspicions = 0
        simulation.observeStatusChanges { event in
            switch event.change.member.status {
            case .dead: deaths.append(event)
            case .suspect: suspicions += 1
            default: break
            }
        }
        simulation.run(for: .seconds(600))
        let health = (0..<5).map { simulation.instance(of: $0).localHealthScore }
        print("seed \(seed): \(suspicions) suspicions (all refuted), \(deaths.count) false deaths, local health now \(health)")
        #expect(deaths.isEmpty, "seed \(seed): first false death \(String(describing: deaths.first))")
        for observer in 0..<5 {
            #expect(simulation.instance(of: observer).liveMemberCount == 4, "seed \(seed): member \(observer) lost someone")
        }
    }

    @Test("a crash at the far site is known dead by all four others within the profile's bound", arguments: [UInt64(0x3A17_0C01), 0x3A17_0C02, 0x3A17_0C03])
    func crashKnownDead(seed: UInt64) {
        let settings = MembershipSettings.wan(roundTrip: .milliseconds(150))
        let bound = Self.crashBound(settings)
        print("seed \(seed): 5 members in two sites, crash member 3 after 60 s; bound \(bound)")
        let simulation = Self.twoSites(seed: seed, settings: settings)
        simulation.run(for: .seconds(60))
        let victim = 3
        let crashedAt = simulation.now
        var seenDeadBy: Set<Int> = []
        var allDeadAt: MeshInstant?
        var otherDeaths = 0
        simulation.observeStatusChanges { event in
            guard event.change.member.status == .dead else { return }
            guard event.subject == victim else {
                otherDeaths += 1
                return
            }
            seenDeadBy.insert(event.observer)
            if seenDeadBy.count == 4, allDeadAt == nil {
                allDeadAt = event.time
                simulation.stop()
            }
        }
        simulation.crash(victim)
        simulation.run(until: crashedAt + .seconds(120))
        let after = allDeadAt.map { $0 - crashedAt }
        print("seed \(seed): crash known dead by all after \(String(describing: after)) (bound \(bound))")
        #expect(after.map { $0 <= bound } == true, "seed \(seed): dead by all after \(String(describing: after)), bound \(bound); seen by \(seenDeadBy.sorted())")
        #expect(otherDeaths == 0, "seed \(seed): \(otherDeaths) false deaths on the way")
    }
}

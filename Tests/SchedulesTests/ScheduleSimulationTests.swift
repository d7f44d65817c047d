import Schedules
import Testing

/// Hosts running `ScheduleBook.due` every virtual second, with replication of the run records
/// delayed, hosts going down and coming back, and the scheduled migration moving the VM (so the
/// next owner sees the same occurrence due). Every occurrence has at most one outcome, and
/// each one whose executor is up in time runs exactly once.
@Suite struct ScheduleSimulationTests {
    struct Host {
        var up = true
        var journal: Set<String> = []
        var runs: [String: ScheduleRuns] = [:]
        /// VM name -> when it arrived here.
        var holds: [String: Int64] = [:]
    }

    struct World {
        var hosts: [String: Host]
        var schedules: [Schedule]
        /// Run records in flight: (deliver at, to, schedule id, runs).
        var inFlight: [(Int64, String, String, ScheduleRuns)] = []
        var executions: [String: [String]] = [:]
        var outcomes: [String: OccurrenceResult.Outcome] = [:]
        let delay: Int64
        /// Per host, how far its clock is off when it stamps an arrival.
        var arrivalSkew: [String: Int64] = [:]
        let rules = ScheduleBook.Rules()

        mutating func step(_ now: Int64) {
            for (i, flight) in inFlight.enumerated().reversed() where flight.0 <= now {
                if hosts[flight.1]!.up { hosts[flight.1]!.runs[flight.2] = Self.merge(hosts[flight.1]!.runs[flight.2], flight.3) }
                inFlight.remove(at: i)
            }
            for name in hosts.keys.sorted() where hosts[name]!.up {
                let host = hosts[name]!
                let directives = ScheduleBook.due(schedules: schedules, runs: host.runs, journaled: host.journal, executor: { s in
                    switch s.action {
                    case .migrate(let vm, _): host.holds[vm].map { .here(sinceUnix: $0) } ?? .elsewhere
                    case .enterMaintenance(let h): h == name ? .here(sinceUnix: .min) : .elsewhere
                    }
                }, nowUnix: now, rules: rules)
                for directive in directives {
                    let (id, index, outcome): (String, Int, OccurrenceResult.Outcome)
                    switch directive {
                    case let .run(s, i): (id, index, outcome) = (s, i, .done)
                    case let .missed(s, i): (id, index, outcome) = (s, i, .missed)
                    }
                    let schedule = schedules.first { $0.id == id }!
                    let occurrence = schedule.occurrenceID(index)
                    hosts[name]!.journal.insert(occurrence)
                    if outcome == .done {
                        executions[occurrence, default: []].append(name)
                        if case .migrate(let vm, let to?) = schedule.action, to != name {
                            hosts[name]!.holds[vm] = nil
                            hosts[to]!.holds[vm] = now + (arrivalSkew[to] ?? 0)
                        }
                    }
                    #expect(outcomes[occurrence] == nil, "\(occurrence) has two outcomes")
                    outcomes[occurrence] = outcome
                    var runs = hosts[name]!.runs[id] ?? ScheduleRuns()
                    runs.record(OccurrenceResult(index: index, outcome: outcome, detail: "", executor: name, atUnix: now))
                    hosts[name]!.runs[id] = runs
                    for other in hosts.keys where other != name { inFlight.append((now + delay, other, id, runs)) }
                }
            }
        }

        static func merge(_ a: ScheduleRuns?, _ b: ScheduleRuns) -> ScheduleRuns {
            guard var a else { return b }
            for r in b.recent { a.record(r) }
            return a
        }
    }

    @Test(arguments: [0, 1, 3, 8] as [Int64])
    func aMigrationThatMovesTheVMRunsOnceWhateverTheReplicationDelay(delay: Int64) {
        let t: Int64 = 1_000
        var world = World(hosts: ["a": Host(), "b": Host(holds: ["web": 0]), "c": Host()],
                          schedules: [Schedule(id: "s", atUnix: t + 5, action: .migrate(vm: "web", to: "c"), createdBy: "a", createdAtUnix: t)],
                          delay: delay)
        world.hosts["a"]!.up = false // the creator is dead when it fires
        for now in t...(t + 60) { world.step(now) }
        #expect(world.executions == ["s#0": ["b"]])
        #expect(world.hosts["c"]!.holds["web"] == t + 5)
    }

    /// The receiving host's clock is 8 s behind (within the arrival margin): its arrival stamp is earlier than the
    /// occurrence's time, yet it does not run it again (the arrival margin).
    @Test func aReceiverWhoseClockIsBehindDoesNotRunItAgain() {
        let t: Int64 = 1_000
        var world = World(hosts: ["b": Host(holds: ["web": 0]), "c": Host()],
                          schedules: [Schedule(id: "s", atUnix: t + 5, action: .migrate(vm: "web", to: "c"), createdBy: "b", createdAtUnix: t)],
                          delay: 30, arrivalSkew: ["c": -8])
        for now in t...(t + 60) { world.step(now) }
        #expect(world.executions == ["s#0": ["b"]])
    }

    @Test func aPeriodicScheduleFollowsItsVMFromHostToHost() {
        let t: Int64 = 1_000
        // Every 100 s, alternately to c and back to b: two schedules, offset by 50 s.
        var world = World(hosts: ["b": Host(holds: ["web": 0]), "c": Host()],
                          schedules: [Schedule(id: "toC", atUnix: t, everySeconds: 100, action: .migrate(vm: "web", to: "c"), createdBy: "b", createdAtUnix: t),
                                      Schedule(id: "toB", atUnix: t + 50, everySeconds: 100, action: .migrate(vm: "web", to: "b"), createdBy: "b", createdAtUnix: t)],
                          delay: 2)
        for now in t...(t + 1_000) { world.step(now) }
        #expect(world.executions.count == 21)
        #expect(world.executions.values.allSatisfy { $0.count == 1 })
        #expect(world.executions["toC#3"] == ["b"])
        #expect(world.executions["toB#3"] == ["c"])
    }

    @Test func anExecutorBackWithinGraceRunsItAndOneBackLaterRecordsItMissed() {
        let t: Int64 = 1_000
        let rules = ScheduleBook.Rules()
        var world = World(hosts: ["h2": Host(), "h3": Host()],
                          schedules: [Schedule(id: "m", atUnix: t + 10, action: .enterMaintenance(host: "h2"), createdBy: "h1", createdAtUnix: t),
                                      Schedule(id: "n", atUnix: t + 10, action: .enterMaintenance(host: "h3"), createdBy: "h1", createdAtUnix: t)],
                          delay: 1)
        world.hosts["h2"]!.up = false
        world.hosts["h3"]!.up = false
        for now in t...(t + 10 + rules.grace + 50) {
            if now == t + 10 + rules.grace - 20 { world.hosts["h2"]!.up = true }
            if now == t + 10 + rules.grace + 30 { world.hosts["h3"]!.up = true }
            world.step(now)
        }
        #expect(world.outcomes == ["m#0": .done, "n#0": .missed])
        #expect(world.executions == ["m#0": ["h2"]])
    }
}

import Schedules
import Testing

@Suite struct ScheduleBookTests {
    let rules = ScheduleBook.Rules()
    let now: Int64 = 1_796_000_000

    func migrate(_ id: String, at: Int64, every: Int64? = nil, vm: String = "web", to: String? = "h2") -> Schedule {
        Schedule(id: id, atUnix: at, everySeconds: every, action: .migrate(vm: vm, to: to), createdBy: "h1", createdAtUnix: now)
    }

    @Test func timesParseAndFormatInUTC() {
        #expect(ScheduleTime.parse("2026-12-05T10:30:00Z", nowUnix: 0) == 1_796_466_600)
        #expect(ScheduleTime.parse("2026-12-05 10:30", nowUnix: 0) == 1_796_466_600)
        #expect(ScheduleTime.format(1_796_466_600) == "2026-12-05T10:30:00Z")
        #expect(ScheduleTime.parse("2024-02-29T00:00:00Z", nowUnix: 0) == 1_709_164_800)
        #expect(ScheduleTime.parse("2025-02-29T00:00:00Z", nowUnix: 0) == nil)
        #expect(ScheduleTime.parse("+90s", nowUnix: 100) == 190)
        #expect(ScheduleTime.parse("+2h", nowUnix: 0) == 7_200)
        #expect(ScheduleTime.parse("@1234", nowUnix: 0) == 1_234)
        #expect(ScheduleTime.parse("tomorrow", nowUnix: 0) == nil)
        #expect(ScheduleTime.parse("2026-13-01T00:00", nowUnix: 0) == nil)
        #expect(ScheduleTime.interval("1d") == 86_400)
        #expect(ScheduleTime.interval("45") == 45)
        #expect(ScheduleTime.interval("-5m") == nil)
        #expect(ScheduleTime.interval("5x") == nil)
    }

    @Test func badSchedulesAreRefusedWithTheirReason() {
        #expect(throws: ScheduleError.inThePast(atUnix: now - 60, nowUnix: now)) {
            try ScheduleBook.validate(migrate("a", at: now - 60), existing: [], nowUnix: now, rules: rules)
        }
        #expect(throws: ScheduleError.intervalTooShort(seconds: 10, minimum: 60)) {
            try ScheduleBook.validate(migrate("a", at: now + 60, every: 10), existing: [], nowUnix: now, rules: rules)
        }
        #expect(ScheduleError.intervalTooShort(seconds: 10, minimum: 60).description.contains("--every 60s or more"))
        // Same VM at the same time: refused; another VM, or another time, is fine.
        let daily = migrate("d", at: now + 3_600, every: 86_400)
        #expect(throws: ScheduleError.conflict(object: "vm web", with: "d", atUnix: now + 3_600 + 2 * 86_400 + 30)) {
            try ScheduleBook.validate(migrate("a", at: now + 3_600 + 2 * 86_400 + 30), existing: [daily], nowUnix: now, rules: rules)
        }
        #expect((try? ScheduleBook.validate(migrate("a", at: now + 3_600 + 2 * 86_400 + 30, vm: "db"), existing: [daily], nowUnix: now, rules: rules)) != nil)
        #expect((try? ScheduleBook.validate(migrate("a", at: now + 7_200, every: 86_400), existing: [daily], nowUnix: now, rules: rules)) != nil)
        // Two periodic schedules that meet only on their sixth occurrence.
        let hourly = migrate("h", at: now + 600, every: 3_600)
        #expect(throws: ScheduleError.conflict(object: "vm web", with: "h", atUnix: now + 600 + 5 * 3_600)) {
            try ScheduleBook.validate(migrate("b", at: now + 600 + 3_600 + 1_800, every: 7_200 - 1_800 / 2), existing: [hourly], nowUnix: now, rules: rules)
        }
        let maintenance = Schedule(id: "m", atUnix: now + 600, action: .enterMaintenance(host: "h2"), createdBy: "h1", createdAtUnix: now)
        #expect(throws: ScheduleError.conflict(object: "host h2", with: "m", atUnix: now + 620)) {
            try ScheduleBook.validate(Schedule(id: "n", atUnix: now + 620, action: .enterMaintenance(host: "h2"), createdBy: "h3", createdAtUnix: now),
                                      existing: [maintenance], nowUnix: now, rules: rules)
        }
    }

    @Test func onlyTheHolderAtTheOccurrencesTimeRunsIt() {
        let s = migrate("s", at: now)
        func due(_ executor: ScheduleBook.Executor, runs: ScheduleRuns? = nil, journaled: Set<String> = [], at: Int64) -> [ScheduleBook.Directive] {
            ScheduleBook.due(schedules: [s], runs: runs.map { ["s": $0] } ?? [:], journaled: journaled, executor: { _ in executor }, nowUnix: at, rules: rules)
        }
        #expect(due(.here(sinceUnix: 0), at: now - 1).isEmpty)
        #expect(due(.here(sinceUnix: 0), at: now) == [.run(scheduleID: "s", index: 0)])
        #expect(due(.elsewhere, at: now).isEmpty)
        // Arrived after the occurrence's time: it was the previous owner's.
        #expect(due(.here(sinceUnix: now + 5), at: now + 10).isEmpty)
        #expect(due(.here(sinceUnix: now), at: now + 10).isEmpty)
        // Arrived within the arrival margin before it: not this host's (clocks differ).
        #expect(due(.here(sinceUnix: now - rules.arrivalMargin), at: now + 10).isEmpty)
        #expect(due(.here(sinceUnix: now - rules.arrivalMargin - 1), at: now + 10) == [.run(scheduleID: "s", index: 0)])
        #expect(due(.here(sinceUnix: 0), journaled: ["s#0"], at: now + 1).isEmpty)
        var runs = ScheduleRuns()
        runs.record(OccurrenceResult(index: 0, outcome: .done, detail: "", executor: "h9", atUnix: now))
        #expect(due(.here(sinceUnix: 0), runs: runs, at: now + 1).isEmpty)
        #expect(due(.here(sinceUnix: 0), at: now + rules.grace) == [.run(scheduleID: "s", index: 0)])
        #expect(due(.here(sinceUnix: 0), at: now + rules.grace + 1) == [.missed(scheduleID: "s", index: 0)])
    }

    @Test func summaryShowsNextRunPendingAndMissed() {
        let s = migrate("s", at: now + 100, every: 3_600)
        #expect(ScheduleBook.summary(s, runs: nil, nowUnix: now, rules: rules).nextUnix == now + 100)
        let pending = ScheduleBook.summary(s, runs: nil, nowUnix: now + 150, rules: rules)
        #expect(pending.nextUnix == now + 3_700)
        #expect(pending.overdue?.state == "pending")
        #expect(ScheduleBook.summary(s, runs: nil, nowUnix: now + 100 + rules.grace + 1, rules: rules).overdue?.state == "missed")
        var runs = ScheduleRuns()
        runs.record(OccurrenceResult(index: 0, outcome: .done, detail: "", executor: "h2", atUnix: now + 101))
        #expect(ScheduleBook.summary(s, runs: runs, nowUnix: now + 150, rules: rules).overdue == nil)
        #expect(ScheduleBook.summary(migrate("o", at: now), runs: runs, nowUnix: now + 150, rules: rules).nextUnix == nil)
    }

    @Test func runsKeepTheLatestOutcomesAndTheHighestIndex() {
        var runs = ScheduleRuns()
        for i in 0..<30 { runs.record(OccurrenceResult(index: i, outcome: .done, detail: "", executor: "h", atUnix: Int64(i))) }
        runs.record(OccurrenceResult(index: 29, outcome: .failed, detail: "again", executor: "h", atUnix: 99))
        #expect(runs.lastIndex == 29)
        #expect(runs.recent.count == ScheduleRuns.kept)
        #expect(runs.recent.first?.index == 10)
        #expect(runs.recent.last?.outcome == .done)
    }
}

@Suite struct ScheduleRunsMergeTests {
    func result(_ i: Int, by host: String) -> OccurrenceResult { OccurrenceResult(index: i, outcome: .done, detail: "", executor: host, atUnix: Int64(i)) }

    @Test func unionKeepsBothExecutorsOutcomesWhateverTheOrder() {
        var b = ScheduleRuns()
        b.record(result(3, by: "b"))
        var c = ScheduleRuns()
        c.record(result(2, by: "c"))
        c.record(result(4, by: "c"))
        #expect(b.merged(with: c) == c.merged(with: b))
        #expect(b.merged(with: c).recent.map(\.index) == [2, 3, 4])
        #expect(b.merged(with: c).lastIndex == 4)
        #expect(b.merged(with: c).merged(with: c) == b.merged(with: c))
        #expect(b.merged(with: ScheduleRuns()) == b)
    }
}

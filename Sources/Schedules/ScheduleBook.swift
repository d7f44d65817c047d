/// The pure rules of schedules (Protocol.md §12.2-14.3): what is refused at creation, which
/// occurrences this host runs now, and what an operator is shown.
public enum ScheduleBook {
    public struct Rules: Sendable, Hashable {
        /// Shortest `--every`.
        public var minimumInterval: Int64 = 60
        /// An occurrence whose executor comes back this long after its time is still run;
        /// later, it is reported missed.
        public var grace: Int64 = 300
        /// Two occurrences on one object closer than this are "at the same time".
        public var conflictWindow: Int64 = 60
        /// A host that received the object (a VM, by migration) runs only occurrences due more
        /// than this after its arrival: arrival times and occurrence times are read on different
        /// hosts' clocks, and a host whose clock is behind must not take an occurrence its previous
        /// holder ran (or was running) as its own. Occurrences in this margin are then nobody's:
        /// missed, never run twice. Hosts whose clocks are 2 s off their peers' are degraded (§11.1).
        public var arrivalMargin: Int64 = 10
        public init() {}
    }

    /// Whether `schedule` may be created beside `existing` at `nowUnix`.
    public static func validate(_ schedule: Schedule, existing: [Schedule], nowUnix: Int64, rules: Rules) throws(ScheduleError) {
        // A second of slack: `--at +0s` typed now is not "in the past".
        guard schedule.atUnix >= nowUnix - 1 else { throw .inThePast(atUnix: schedule.atUnix, nowUnix: nowUnix) }
        if let every = schedule.everySeconds, every < rules.minimumInterval {
            throw .intervalTooShort(seconds: every, minimum: rules.minimumInterval)
        }
        for other in existing.sorted(by: { $0.id < $1.id }) where other.action.object == schedule.action.object && other.id != schedule.id {
            if let at = firstClash(schedule, other, window: rules.conflictWindow) {
                throw .conflict(object: schedule.action.object, with: other.id, atUnix: at)
            }
        }
    }

    /// The first occurrence of `a` within `window` of one of `b`'s, looking a year ahead (and at
    /// most 100,000 occurrences).
    static func firstClash(_ a: Schedule, _ b: Schedule, window: Int64) -> Int64? {
        let horizon = max(a.atUnix, b.atUnix) + 366 * 86_400
        var index = 0
        while index < 100_000 {
            let t = a.time(of: index)
            guard t <= horizon else { return nil }
            if let near = nearest(b, to: t), abs(near - t) < window { return t }
            guard a.everySeconds != nil else { return nil }
            index += 1
        }
        return nil
    }

    /// `s`'s occurrence nearest to `t`.
    static func nearest(_ s: Schedule, to t: Int64) -> Int64? {
        guard let every = s.everySeconds, every > 0 else { return s.atUnix }
        guard t > s.atUnix else { return s.atUnix }
        let k = (t - s.atUnix) / every
        let below = s.time(of: Int(k))
        let above = s.time(of: Int(k) + 1)
        return t - below <= above - t ? below : above
    }

    /// Who may run a schedule's occurrences on this host.
    public enum Executor: Sendable, Hashable {
        /// This host does not hold the object (another host owns the VM, or the host concerned is another).
        case elsewhere
        /// This host holds the object, since `sinceUnix` (the host concerned: since forever;
        /// a VM: since it arrived here). Occurrences due at or before that were another host's.
        case here(sinceUnix: Int64)
    }

    /// What this host does now about one occurrence.
    public enum Directive: Sendable, Hashable {
        /// Journal the occurrence id, then carry out the action.
        case run(scheduleID: String, index: Int)
        /// Record it missed (its time is past the grace period).
        case missed(scheduleID: String, index: Int)
    }

    /// Occurrences looked back over when an executor returns (older ones are only shown missed).
    public static let lookBack = 10

    /// The occurrences this host runs or records missed now (Protocol.md §12.3), ascending per
    /// schedule. Exactly once: an occurrence is this host's only if it held the object at the
    /// occurrence's time; it is never run when its index is at or below the replicated
    /// `lastIndex`, nor when this host's journal has its id.
    public static func due(schedules: [Schedule], runs: [String: ScheduleRuns], journaled: Set<String>, executor: (Schedule) -> Executor,
                           nowUnix: Int64, rules: Rules) -> [Directive] {
        var out: [Directive] = []
        for schedule in schedules.sorted(by: { $0.id < $1.id }) {
            guard let latest = schedule.latestDue(at: nowUnix), case .here(let since) = executor(schedule) else { continue }
            let done = runs[schedule.id]?.lastIndex ?? -1
            let first = max(done + 1, latest - lookBack + 1, 0)
            guard first <= latest else { continue }
            for index in first...latest {
                let at = schedule.time(of: index)
                // Held since before its time, by more than the arrival margin: a host the VM
                // reached at that very second was receiving it then (held by no one), and clocks differ.
                guard !journaled.contains(schedule.occurrenceID(index)), since == .min || at > since + rules.arrivalMargin else { continue }
                out.append(nowUnix - at > rules.grace ? .missed(scheduleID: schedule.id, index: index) : .run(scheduleID: schedule.id, index: index))
            }
        }
        return out
    }

    /// What `schedule list` shows of a schedule: its next occurrence, and the due one that no
    /// executor has an outcome for (pending while in grace, then missed).
    public struct Summary: Sendable, Hashable {
        public var nextUnix: Int64?
        public var last: OccurrenceResult?
        /// The latest due occurrence without an outcome: "pending" within the grace period, "missed" after.
        public var overdue: (index: Int, state: String)?

        public static func == (a: Summary, b: Summary) -> Bool {
            a.nextUnix == b.nextUnix && a.last == b.last && a.overdue?.index == b.overdue?.index && a.overdue?.state == b.overdue?.state
        }
        public func hash(into hasher: inout Hasher) {
            hasher.combine(nextUnix)
            hasher.combine(last)
            hasher.combine(overdue?.index)
        }
    }

    public static func summary(_ schedule: Schedule, runs: ScheduleRuns?, nowUnix: Int64, rules: Rules) -> Summary {
        let next = schedule.next(after: nowUnix).map { schedule.time(of: $0) }
        var overdue: (Int, String)?
        if let latest = schedule.latestDue(at: nowUnix), latest > (runs?.lastIndex ?? -1) {
            overdue = (latest, nowUnix - schedule.time(of: latest) > rules.grace ? "missed" : "pending")
        }
        return Summary(nextUnix: next, last: runs?.recent.last, overdue: overdue)
    }
}

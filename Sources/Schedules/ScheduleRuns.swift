/// What happened to one occurrence.
public struct OccurrenceResult: Sendable, Hashable, Codable {
    public enum Outcome: String, Sendable, Hashable, Codable {
        /// The action ran and succeeded.
        case done
        /// The action ran and failed (the detail says why).
        case failed
        /// Not run: its executor was down past the grace period.
        case missed
        /// Not run: the object was not its executor's any more (the VM moved, or is gone).
        case skipped
        /// Started, but the agent stopped before it ended: its result is unknown, and it is not run again.
        case interrupted
    }

    public var index: Int
    public var outcome: Outcome
    public var detail: String
    /// Host id of the executor.
    public var executor: String
    /// When it ended (unix seconds).
    public var atUnix: Int64

    public init(index: Int, outcome: Outcome, detail: String, executor: String, atUnix: Int64) {
        self.index = index
        self.outcome = outcome
        self.detail = detail
        self.executor = executor
        self.atUnix = atUnix
    }
}

/// A schedule's replicated run record (Protocol.md §12.3): the highest occurrence index that
/// has an outcome, and the latest outcomes. Written only by executors, each over the copy it
/// has; an occurrence at or below `lastIndex` is never run again anywhere.
public struct ScheduleRuns: Sendable, Hashable, Codable {
    /// Outcomes kept per schedule.
    public static let kept = 20

    public var lastIndex: Int
    /// Newest last.
    public var recent: [OccurrenceResult]

    public init(lastIndex: Int = -1, recent: [OccurrenceResult] = []) {
        self.lastIndex = lastIndex
        self.recent = recent
    }

    /// Both replicas' outcomes (Protocol.md §12.3): run records are last-writer-wins like every
    /// replicated record, so two executors writing at once could each drop the other's outcome;
    /// an agent that sees the winner lack outcomes it holds writes the union. Commutative,
    /// associative, idempotent.
    public func merged(with other: ScheduleRuns) -> ScheduleRuns {
        var out = self
        for result in other.recent { out.record(result) }
        out.lastIndex = max(lastIndex, other.lastIndex)
        return out
    }

    /// Adds an outcome (idempotent per index).
    public mutating func record(_ result: OccurrenceResult) {
        guard !recent.contains(where: { $0.index == result.index }) else { return }
        recent.append(result)
        recent.sort { $0.index < $1.index }
        if recent.count > Self.kept { recent.removeFirst(recent.count - Self.kept) }
        lastIndex = max(lastIndex, result.index)
    }
}

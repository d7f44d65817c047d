/// When a pre-copy migration stops converging, what to do next: a pure policy (samples in,
/// directives out, no clock of its own: time is QEMU's `total-time` in each sample).
///
/// The rungs, in order: raise the downtime limit step by step; throttle the guest
/// (auto-converge); switch to post-copy if allowed. Independently, once the completion budget
/// (`budgetBase + budgetPerGiB × RAM GiB`) is spent in pre-copy, cancel: the guest keeps
/// running on the source, unless the bytes left reached a new low (5% below the best seen in
/// this migration) within the last `progressGraceMs`: a migration that still gains is not cut off
/// because a loaded host runs it slowly, up to `hardBudgetFactor` times the budget. Once in
/// post-copy nothing is cancelled (the guest already runs on the destination; cancelling would
/// lose it).
///
/// At the top of the ladder with no remedy engaged (neither throttling nor post-copy allowed),
/// a guest that still dirties at least as fast as the link sends for `stallPolls` samples cannot
/// converge: cancel at once, with the figures, rather than wait for the budget.
///
/// A sample is "not converging" when the dirty rate reaches the throughput (the link cannot
/// outrun the guest), or when the bytes left have not reached a new low (5% below the best seen
/// on this rung). `stallPolls` such samples in a row climb one rung.
public struct ConvergenceLadder: Sendable, Equatable {
    /// The policy's knobs.
    public struct Policy: Codable, Sendable, Equatable {
        /// Consecutive non-converging samples before climbing a rung.
        public var stallPolls: Int = 10
        /// Downtime limits to try, ms, in order.
        public var downtimeStepsMs: [Int64] = [500, 1000, 2000]
        /// Whether the ladder may throttle the guest (needs `MigrationSettings.armAutoConverge`).
        public var allowThrottle: Bool = true
        /// Whether the ladder may switch to post-copy (needs `MigrationSettings.postcopyAllowed`).
        public var allowPostcopy: Bool = false
        /// Fixed part of the completion budget, ms.
        public var budgetBaseMs: Int64 = 10_000
        /// Completion budget per GiB of guest RAM, ms.
        public var budgetPerGiBMs: Int64 = 30_000
        /// Past the budget, the migration goes on while the bytes left made a new low within
        /// this long, ms.
        public var progressGraceMs: Int64 = 5_000
        /// Never past this many times the budget, progress or not.
        public var hardBudgetFactor: Int64 = 3

        /// The defaults described on each property.
        public init() {}

        /// The completion budget for a guest of `ramBytes`, ms.
        public func budgetMs(ramBytes: Int64) -> Int64 {
            budgetBaseMs + Int64((Double(ramBytes) / Double(1 << 30) * Double(budgetPerGiBMs)).rounded(.up))
        }
    }

    /// Where the ladder stands.
    public enum Rung: Sendable, Equatable, Codable, CustomStringConvertible {
        /// Plain pre-copy with the configured downtime limit.
        case precopy
        /// Pre-copy with a raised downtime limit, ms.
        case raisedDowntime(Int64)
        /// Pre-copy with the guest throttled.
        case throttled
        /// Post-copy started.
        case postcopy
        /// Cancelled: the completion budget was spent, or the guest outruns the link with no
        /// remedy left (`ConvergenceLadder.abortCause` says which).
        case aborted

        public var description: String {
            switch self {
            case .precopy: return "pre-copy"
            case let .raisedDowntime(ms): return "downtime limit \(ms) ms"
            case .throttled: return "throttled"
            case .postcopy: return "post-copy"
            case .aborted: return "aborted"
            }
        }
    }

    /// Why the ladder cancelled.
    public enum AbortCause: Sendable, Equatable, Codable {
        /// The budget was spent and the bytes left stopped falling.
        case budget
        /// The hard limit (`hardBudgetFactor` times the budget) was reached.
        case hardLimit
        /// The guest dirties at least as fast as the link sends and no rung is left to slow it.
        case outrun
    }

    /// What the shell must do.
    public enum Directive: Sendable, Equatable, Codable {
        /// `migrate-set-parameters downtime-limit`.
        case setDowntimeLimit(ms: Int64)
        /// `migrate-set-parameters` with `MigrationSettings.activeThrottle`.
        case startThrottling
        /// `migrate-start-postcopy`.
        case startPostcopy
        /// `migrate_cancel`; the guest stays on the source.
        case cancel(reason: String)
    }

    /// The policy.
    public let policy: Policy
    /// The current rung.
    public private(set) var rung: Rung = .precopy
    /// Every rung climbed so far, in order (for the migration's history).
    public private(set) var history: [Rung] = []
    /// Why the ladder cancelled, once it has.
    public private(set) var abortCause: AbortCause?
    private var stalledSamples = 0
    private var outrunSamples = 0
    private var bestRemaining: Int64?
    /// The fewest bytes left in this whole migration (not reset by a climb), and when.
    private var lowestRemaining: Int64?
    private var lowestAtMs: Int64 = 0

    /// A ladder at the bottom rung.
    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Feeds one sample; returns what to do now (usually nothing).
    public mutating func observe(_ sample: MigrationProgress) -> [Directive] {
        if sample.phase == .postcopy, rung != .postcopy {
            climb(to: .postcopy)
        }
        guard sample.phase == .active, rung != .postcopy, rung != .aborted else { return [] }

        if lowestRemaining.map({ Double(sample.remainingBytes) < Double($0) * 0.95 }) ?? true {
            (lowestRemaining, lowestAtMs) = (sample.remainingBytes, sample.totalTimeMs)
        }
        let budget = policy.budgetMs(ramBytes: sample.ramTotalBytes)
        let gaining = sample.totalTimeMs - lowestAtMs <= policy.progressGraceMs
        if sample.totalTimeMs > budget, !gaining || sample.totalTimeMs > budget * policy.hardBudgetFactor {
            climb(to: .aborted)
            abortCause = gaining ? .hardLimit : .budget
            let why = gaining ? "its hard limit of \(budget * policy.hardBudgetFactor) ms"
                : "its budget of \(budget) ms, without gaining in the last \(policy.progressGraceMs) ms"
            return [.cancel(reason: "migration did not complete within \(why) "
                + "(\(sample.ramTotalBytes >> 20) MiB RAM, dirty rate \(Int(sample.dirtyBytesPerSecond / 1e6)) MB/s, "
                + "throughput \(Int(sample.throughputBytesPerSecond / 1e6)) MB/s)")]
        }

        let outrun = sample.dirtyBytesPerSecond > 0 && sample.dirtyBytesPerSecond >= sample.throughputBytesPerSecond
        outrunSamples = outrun && sample.iteration >= 2 ? outrunSamples + 1 : 0
        let newLow = bestRemaining.map { Double(sample.remainingBytes) < Double($0) * 0.95 } ?? true
        if newLow { bestRemaining = sample.remainingBytes }
        // The first pass always makes progress; judge from the second iteration on.
        guard sample.iteration >= 2, outrun || !newLow else {
            stalledSamples = 0
            return []
        }
        stalledSamples += 1
        guard stalledSamples >= policy.stallPolls else { return [] }
        stalledSamples = 0
        bestRemaining = nil
        return nextRung(sample)
    }

    private mutating func nextRung(_ sample: MigrationProgress) -> [Directive] {
        let steps = policy.downtimeStepsMs
        var nextStep: Int64?
        switch rung {
        case .precopy: nextStep = steps.first
        case let .raisedDowntime(current): nextStep = steps.first { $0 > current }
        default: nextStep = nil
        }
        if let nextStep {
            climb(to: .raisedDowntime(nextStep))
            return [.setDowntimeLimit(ms: nextStep)]
        }
        if policy.allowThrottle, rung != .throttled {
            climb(to: .throttled)
            return [.startThrottling]
        }
        if policy.allowPostcopy {
            climb(to: .postcopy)
            return [.startPostcopy]
        }
        // Top of the ladder. Throttling or post-copy may still win (the budget decides); with
        // neither, a guest that outruns the link never will.
        if rung != .throttled, outrunSamples >= policy.stallPolls {
            climb(to: .aborted)
            abortCause = .outrun
            return [.cancel(reason: "the guest dirties \(Int(sample.dirtyBytesPerSecond / 1e6)) MB/s and the link sends "
                + "\(Int(sample.throughputBytesPerSecond / 1e6)) MB/s: pre-copy cannot converge without throttling or post-copy")]
        }
        return []
    }

    private mutating func climb(to rung: Rung) {
        self.rung = rung
        history.append(rung)
    }
}

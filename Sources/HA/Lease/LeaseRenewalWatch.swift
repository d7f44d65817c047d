public import MeshTime

/// How close a lease keeper's renewals come to its fence (Protocol.md §9.2, "What the keeper
/// reports"): a pure record of the renewals that completed, for the operator, before slow
/// shared storage makes the keeper kill its copy.
///
/// A *stretch* is how old the lease had become when a renewal landed: from the issue of the
/// previous renewal that completed to this one's completion, which is when the keeper's
/// `LeaseOwnerCore` learns of it (after the write and the look for claims that follows it). It
/// normally lasts one renew interval plus one write; the core fences when the age reaches
/// `fenceAfter` at one of its ticks, so a stretch that long means the copy was killed. Halfway
/// between the two the keeper warns (`warnAfter`). Figures cover the last `window` (60 s).
public struct LeaseRenewalWatch: Sendable, Equatable {
    /// One completed renewal.
    public struct Renewal: Sendable, Equatable {
        /// When it completed.
        public var completedAt: MeshInstant
        /// How long its write took (from its issue to the lease file written).
        public var write: Duration
        /// How old the lease had become when it landed (the look for claims included).
        public var stretch: Duration
    }

    /// The figures a keeper reports (`lease-keeper.renewals`).
    public struct Report: Sendable, Equatable {
        /// The last renewal's write.
        public var lastWrite: Duration
        /// The slowest write within the window.
        public var slowestWrite: Duration
        /// The longest stretch within the window.
        public var longestStretch: Duration
        /// The keeper's renew interval (a stretch normally lasts about this long).
        public var renewInterval: Duration
        /// The keeper's fence time: a lease this old kills the copy.
        public var fenceAfter: Duration

        public init(lastWrite: Duration, slowestWrite: Duration, longestStretch: Duration, renewInterval: Duration, fenceAfter: Duration) {
            self.lastWrite = lastWrite
            self.slowestWrite = slowestWrite
            self.longestStretch = longestStretch
            self.renewInterval = renewInterval
            self.fenceAfter = fenceAfter
        }

        /// A stretch past this is warned about: halfway from the renew interval to the fence time.
        public var warnAfter: Duration { Self.warnAfter(renewInterval: renewInterval, fenceAfter: fenceAfter) }

        /// Halfway from `renewInterval` (a stretch's usual length) to `fenceAfter` (the kill).
        static func warnAfter(renewInterval: Duration, fenceAfter: Duration) -> Duration {
            renewInterval + (fenceAfter - renewInterval) / 2
        }

        /// The file's text: one `name milliseconds` line per figure.
        public var text: String {
            [("last_write_ms", lastWrite), ("slowest_write_ms", slowestWrite), ("longest_stretch_ms", longestStretch),
             ("renew_ms", renewInterval), ("fence_ms", fenceAfter)]
                .map { "\($0.0) \($0.1.wholeMilliseconds)\n" }.joined()
        }

        /// Reads `text`; nil when a figure is missing or not a number (a file being replaced, or
        /// one from another version).
        public init?(text: String) {
            var figures: [Substring: Duration] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let value = Int64(parts[1]), value >= 0 else { return nil }
                figures[parts[0]] = .milliseconds(value)
            }
            guard let last = figures["last_write_ms"], let slowest = figures["slowest_write_ms"],
                  let stretch = figures["longest_stretch_ms"], let renew = figures["renew_ms"], let fence = figures["fence_ms"] else { return nil }
            self.init(lastWrite: last, slowestWrite: slowest, longestStretch: stretch, renewInterval: renew, fenceAfter: fence)
        }
    }

    /// The timings watched.
    public let settings: LeaseSettings
    /// How far back the figures reach.
    public let window: Duration
    /// The renewals completed within the window, oldest first.
    public private(set) var renewals: [Renewal] = []
    /// When the last completed renewal was issued (the lease's age counts from it).
    private var lastGood: MeshInstant

    /// A watch from the lease's acquisition, whose write was issued at `acquiredAt`.
    public init(settings: LeaseSettings, acquiredAt: MeshInstant, window: Duration = .seconds(60)) {
        self.settings = settings
        self.window = window
        lastGood = acquiredAt
    }

    /// A stretch past this is warned about (`Report.warnAfter`, for these timings).
    public var warnAfter: Duration { Report.warnAfter(renewInterval: settings.renewInterval, fenceAfter: settings.fenceAfter) }

    /// Records a renewal issued at `startedAt`, whose lease file was written by `written`, that
    /// completed (claims looked at) at `completedAt`; returns it, so the caller can tell whether
    /// its stretch passed `warnAfter`.
    @discardableResult
    public mutating func completed(startedAt: MeshInstant, written: MeshInstant, at completedAt: MeshInstant) -> Renewal {
        let renewal = Renewal(completedAt: completedAt, write: written - startedAt, stretch: completedAt - lastGood)
        lastGood = max(lastGood, startedAt)
        renewals.append(renewal)
        renewals.removeAll { completedAt - $0.completedAt > window }
        return renewal
    }

    /// The figures now; nil before the first renewal.
    public var report: Report? {
        guard let last = renewals.last else { return nil }
        return Report(lastWrite: last.write, slowestWrite: renewals.map(\.write).max()!, longestStretch: renewals.map(\.stretch).max()!,
                      renewInterval: settings.renewInterval, fenceAfter: settings.fenceAfter)
    }
}

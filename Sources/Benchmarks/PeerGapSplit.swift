/// A pinging peer's gaps across one migration, split into the two stalls a move can cause: the
/// one around the switchover (the guest paused from QEMU's STOP to its RESUME; what the targets'
/// "peer gap minus downtime" is about) and the one in pre-copy, before the STOP (under TCG, QEMU
/// 7.2 stalls the guest when the migration starts: `Scripts/precopy-stall.py` measures it
/// without the agents). Pure: the peer's console lines with the host times they appeared
/// (`ConsoleLineClock`) and the host times of the migration request and of the STOP go in.
///
/// The peer (`hmtool ping`) prints `PINGGAP … gap_ms=G` the moment a reply ends a gap of 100 ms
/// or more, so such a gap ended when its line appeared; shorter gaps are only in the `wgap_ms`
/// of its once-a-second `PING` lines (the longest gap that ended since the line before). A gap
/// ending at or after the STOP is the switchover's; one ending between the request and the STOP
/// is pre-copy's. Below 100 ms a `PING` line's window is used only when it lies wholly on one
/// side of the STOP, or (for the switchover) when it ends after it: any gap of 100 ms or more in
/// such a window has its own `PINGGAP` line and is placed by it. A window the pause falls in whose
/// longest gap (100 ms or more) ended before the STOP hides the switchover's shorter one: then,
/// unless a `PINGGAP` after the STOP places it, the switchover's gap is not placed.
struct PeerGapSplit: Sendable, Equatable {
    /// The longest gap ending at or after the STOP (within the switchover's window), ms; nil if
    /// the peer printed nothing there (not placed: a benchmark counts it as a miss, never as 0).
    var switchoverGapMs: Int?
    /// The longest gap that ended after the migration request and before the STOP, ms; nil if
    /// no line places one there.
    var precopyGapMs: Int?
    /// How long before the STOP that pre-copy gap ended, ms (nil when it was under 100 ms: only
    /// a `PING` line's window places it).
    var precopyGapEndedBeforeStopMs: Int?

    /// How long after the guest's RESUME (the STOP plus the downtime) the switchover's gap may
    /// still end, seconds: the guest's own restart, and the peer's next reply.
    static let switchoverMargin = 3.0
    /// The peer's `PINGGAP` threshold (`GAP_REPORT_MS` in `hmtool.c`), ms.
    static let reportedGapMs = 100

    /// Splits the gaps of `lines` (`PINGGAP <ip> …` and `PING <ip> …` of one pinger, in the order
    /// they appeared) around `stopAt`, counting pre-copy from `requestedAt` (both Unix seconds);
    /// the switchover's window lasts the `downtimeMs` the guest was paused plus `switchoverMargin`.
    init(lines: [ConsoleLineClock.Line], ip: String, requestedAt: Double, stopAt: Double, downtimeMs: Double) {
        let gaps = lines.filter { $0.text.hasPrefix("PINGGAP \(ip) ") }.compactMap { line in
            NetworkMigrationBenchmark.field(line.text, "gap_ms").map { (end: line.at, ms: $0) }
        }
        let summaries = lines.filter { $0.text.hasPrefix("PING \(ip) ") }
        var windows: [(start: Double, end: Double, ms: Int)] = []
        for (index, line) in summaries.enumerated() {
            guard let ms = NetworkMigrationBenchmark.field(line.text, "wgap_ms") else { continue }
            windows.append((start: index == 0 ? -.infinity : summaries[index - 1].at, end: line.at, ms: ms))
        }
        let switchoverEnd = stopAt + max(0, downtimeMs) / 1000 + Self.switchoverMargin
        let switchover = gaps.filter { $0.end >= stopAt && $0.end <= switchoverEnd }.map(\.ms)
            + windows.filter { $0.end >= stopAt && $0.start <= switchoverEnd && $0.ms < Self.reportedGapMs }.map(\.ms)
        // The window the guest resumed in, if it holds a gap of 100 ms or more that its `PINGGAP`
        // placed before the STOP (the pre-copy stall in the same second), hides any shorter gap
        // the switchover ended in it: with no `PINGGAP` after the STOP, the switchover's gap is
        // then not known, and is not placed (reading the next windows would understate it).
        let resumedAt = stopAt + max(0, downtimeMs) / 1000
        let masked = windows.contains { $0.start <= resumedAt && $0.end >= resumedAt && $0.ms >= Self.reportedGapMs }
        let reportedAfterStop = gaps.contains { $0.end >= stopAt && $0.end <= switchoverEnd }
        switchoverGapMs = masked && !reportedAfterStop ? nil : switchover.max()
        let precopy = gaps.filter { $0.end >= requestedAt && $0.end < stopAt }
        if let longest = precopy.max(by: { $0.ms < $1.ms }) {
            precopyGapMs = longest.ms
            precopyGapEndedBeforeStopMs = Int(((stopAt - longest.end) * 1000).rounded())
        } else {
            precopyGapMs = windows.filter { $0.start >= requestedAt && $0.end < stopAt }.map(\.ms).max()
            precopyGapEndedBeforeStopMs = nil
        }
    }
}

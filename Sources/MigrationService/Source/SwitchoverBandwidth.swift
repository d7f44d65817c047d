/// The bandwidth a source tells QEMU to assume for the switchover across a distance (QEMU's
/// `avail-switchover-bandwidth`, Protocol.md §6.11). QEMU's own figure is what it wrote in its
/// last 100 ms: across a long round trip that is what the buffers on the way took, high while
/// they fill and low once the guest leaves little to send, and QEMU's switch to the final pause
/// (remaining bytes ≤ bandwidth × downtime limit) rests on it. The source instead feeds what the
/// kernel measures its stream connections deliver (`tcpi_delivery_rate`, summed over stripes):
/// the best of the last `window`, because a guest that leaves little to send makes the path look
/// slow without making it so. (The risk of the window: when other traffic starts sharing the link,
/// QEMU believes the better rate for up to 10 s, and a switchover in that time can pause longer
/// than the downtime limit by the ratio of the two rates.) A pure core: samples in, the figure to
/// set (or nothing) out.
struct SwitchoverBandwidth: Sendable {
    /// How far back the best delivery rate counts.
    static let window: Duration = .seconds(10)
    /// How often the rate is read.
    static let interval: Duration = .seconds(1)
    /// A change smaller than this fraction of the figure set is not worth a QMP command.
    static let change = 0.1

    private var samples: [(at: Duration, rate: UInt64)] = []
    private var lastRead: Duration?
    /// The figure QEMU was last told, bytes per second (0: none yet).
    private(set) var told: UInt64 = 0

    /// A fresh feed at the start of a transfer.
    init() {}

    /// A fresh feed after a reading at `now` whose figure QEMU did not take: it is offered again
    /// at the next reading, one interval later.
    init(after now: Duration) {
        lastRead = now
    }

    /// Whether a reading is due at `now` (time since the transfer started). The first comes one
    /// interval in: before that the connections have carried only their handshakes, and the
    /// kernel's rate of that first flight was ~77 KB/s across 150 ms (measured), which would hold
    /// QEMU's switchover back for a second.
    func due(at now: Duration) -> Bool {
        lastRead.map { now - $0 >= Self.interval } ?? (now >= Self.interval)
    }

    /// Takes the delivery rate read at `now` (0: unreadable) and returns the figure to set, when
    /// it differs enough from the last one set.
    mutating func observe(_ rate: UInt64, at now: Duration) -> UInt64? {
        lastRead = now
        samples.removeAll { now - $0.at > Self.window }
        if rate > 0 { samples.append((now, rate)) }
        guard let best = samples.map(\.rate).max() else { return nil }
        guard told == 0 || Double(best > told ? best - told : told - best) > Self.change * Double(told) else { return nil }
        told = best
        return best
    }
}

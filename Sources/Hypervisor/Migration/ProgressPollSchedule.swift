/// How long the source waits before its next `query-migrate`, from the last sample: a pure
/// policy (sample in, interval out; no clock).
///
/// Each poll costs a QMP round trip, two JSON documents and a progress line for every listener,
/// so polling costs CPU per second of migration, not per byte (issue 18: 0.29 s/GB of the
/// agents' CPU on a loaded machine where a migration lasts seconds). Most of a migration is the
/// first pass, where nothing can happen that a sample would act on: the bytes left fall, the
/// ladder does not climb, and the end of the pass is seen from QEMU's `MIGRATION` events, not
/// from polls. So the interval stretches to a quarter of the time the pass still needs at the
/// current rate, between `shortest` and `longest`; it stays at `shortest` whenever the ladder
/// may have to act soon: outside the `active` phase, before QEMU's first rate figure, and while
/// the guest dirties at least half as fast as the link sends (`ConvergenceLadder` counts its
/// stalls in samples). Progress lines follow the samples (Protocol.md §7, `migrate`).
public struct ProgressPollSchedule: Sendable, Equatable {
    /// The interval while the ladder may have to act (the poll of every earlier release).
    public var shortest: Duration = .milliseconds(50)
    /// The longest wait between two samples (what a progress listener may see at worst).
    public var longest: Duration = .milliseconds(250)
    /// The dirty rate, as a share of the throughput, from which samples come at `shortest`.
    public var watchedDirtyShare: Double = 0.5

    /// The defaults described on each property.
    public init() {}

    /// The wait before the sample after `sample`.
    public func interval(after sample: MigrationProgress) -> Duration {
        guard sample.phase == .active, sample.throughputBytesPerSecond > 0, sample.remainingBytes > 0 else { return shortest }
        if sample.dirtyBytesPerSecond >= sample.throughputBytesPerSecond * watchedDirtyShare { return shortest }
        let passSeconds = Double(sample.remainingBytes) / sample.throughputBytesPerSecond
        let quarter = Duration.milliseconds(Int64((passSeconds * 1000 / 4).rounded(.down)))
        return min(longest, max(shortest, quarter))
    }
}

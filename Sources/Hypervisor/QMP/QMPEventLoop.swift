public import NIOPosix

/// The event loop every QMP connection of the process runs on by default.
///
/// QMP is control traffic: a few JSON documents per poll, a burst of events at a migration's
/// switchover. On NIO's shared group it would take turns on the loops that seal and open a
/// migration's stream (turns of 1-3 ms each), delaying both: the bulk bytes behind the JSON,
/// and a `MIGRATION` event (the moment the guest is paused) behind a megabyte of sealing
/// (issue 18). One thread of its own keeps the two apart; QMP needs no more.
public enum QMPEventLoop {
    /// One thread for every QMP connection in the process (tests and benchmarks run several
    /// agents in one); like NIO's singleton it lives as long as the process.
    public static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}

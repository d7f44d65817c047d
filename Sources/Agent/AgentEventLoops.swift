import NIOPosix

/// The event loops an agent's I/O runs on, split by what the work needs.
///
/// Bulk work (migration streams: a turn seals or opens up to a megabyte, 1-3 ms) stays on NIO's
/// shared group. The virtual switch (every VM's frames) and gossip (probes timed in
/// milliseconds) get a loop of their own, so that a migration on the host does not add its
/// turns to every VM's latency or to failure detection (issue 18 item 4; `hostmesh bench
/// network` measures the neighbours' RTT during a migration).
enum AgentEventLoops {
    /// One thread for latency-sensitive I/O, shared by every agent in the process (tests and
    /// benchmarks run several); like NIO's singleton it lives as long as the process.
    static let latency = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}

public import Hypervisor

/// What `hostmesh vm list/show` prints about a VM.
public struct VMInfo: Codable, Sendable, Equatable {
    /// VM id.
    public var id: String
    /// Name.
    public var name: String
    /// running, paused, stopped, crashed, migrating, incoming.
    public var state: String
    /// QEMU pid while it runs.
    public var pid: Int32?
    /// vCPUs.
    public var vcpus: Int
    /// RAM in MiB.
    public var memoryMiB: Int
    /// kvm or tcg, and why, while it runs.
    public var accelerator: String?
    /// QEMU's own run state while it runs (e.g. "running", "paused", "postmigrate").
    public var qemuStatus: String?
    /// Why it is not running when it should be.
    public var problem: String?
    /// Ownership epoch (advances at every completed handover).
    public var epoch: Int64?
}

/// `vm show`: the info, the spec and the migration history.
public struct VMDetails: Codable, Sendable {
    /// Summary.
    public var info: VMInfo
    /// The spec.
    public var spec: VMSpec
    /// Migrations this host took part in, newest first.
    public var migrations: [MigrationRecord]
}

/// One migration, as `vm show` and `hostmesh migrations` print it.
public struct MigrationRecord: Codable, Sendable, Equatable {
    /// Migration id.
    public var id: String
    /// VM name.
    public var vm: String
    /// source or destination.
    public var role: String
    /// The other host.
    public var peer: String
    /// Last phase reached.
    public var phase: String
    /// Unix seconds.
    public var startedAt: Double
    /// Unix seconds.
    public var endedAt: Double?
    /// Figures, when it completed.
    public var report: MigrationReport?
    /// Why it failed.
    public var error: String?
}

/// The figures of a completed migration.
public struct MigrationReport: Codable, Sendable, Equatable {
    /// From the start of the migration to the guest running on the destination, ms.
    public var totalMs: Int64
    /// Guest pause as QEMU measured it on the source, ms.
    public var qemuDowntimeMs: Int64
    /// From the source's completion to the destination's confirmation that the guest runs, ms:
    /// the part of the pause the agents add for the safe handover.
    public var switchoverMs: Int64
    /// Guest-visible pause: QEMU's downtime plus the handover, ms.
    public var downtimeMs: Int64
    /// Bytes QEMU moved.
    public var transferredBytes: Int64
    /// Average throughput, MB/s.
    public var mbPerSecond: Double
    /// Pre-copy iterations.
    public var iterations: Int
    /// Convergence measures taken (downtime raised, throttled, post-copy).
    public var ladder: [String]
    /// Secure channels that carried the stream.
    public var streams: Int
    /// Where the time went: connect and authenticate, destination ready, QEMU transfer, handover (ms).
    public var phasesMs: [String: Int64]?
    /// True when the guest moved in post-copy (it ran on the destination while pages followed).
    public var postcopy: Bool?
}

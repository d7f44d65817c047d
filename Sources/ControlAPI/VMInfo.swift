/// What `hostmesh vm list/show` prints about a VM (the "VM info" of Protocol.md §7).
public struct VMInfo: Codable, Sendable, Equatable {
    /// VM id: the agent makes it a lower-case UUID at `vm.create`.
    public var id: String
    /// Name, unique on the host.
    public var name: String
    /// One of running, paused, stopped, crashed, migrating, incoming, recovering, in-doubt,
    /// restarting (its QEMU died and its owner restarts it, Protocol.md §9.1) and failed (it
    /// died and will not be restarted: `problem` says why).
    public var state: String
    /// QEMU pid; nil unless QEMU runs.
    public var pid: Int32?
    /// vCPUs, 1...255.
    public var vcpus: Int
    /// RAM in MiB.
    public var memoryMiB: Int
    /// kvm or tcg, and why; nil unless QEMU runs.
    public var accelerator: String?
    /// QEMU's own run state (e.g. "running", "paused", "postmigrate"); nil unless QEMU runs.
    public var qemuStatus: String?
    /// Why it is not running when it should be; nil when nothing is wrong.
    public var problem: String?
    /// Ownership epoch (advances at every completed handover and every restart).
    public var epoch: Int64?
    /// Restarts by its owner after its QEMU died; nil when there were none.
    public var restarts: Restarts?

    /// What `problem` starts with when no copy of the guest runs anywhere: its owner's QEMU died
    /// (state `crashed`, `restarting` or `failed`).
    public static let lost = "lost: no copy runs"

    /// How often a VM was restarted in place, and why the last time (Protocol.md §9.1).
    public struct Restarts: Codable, Sendable, Equatable {
        /// Restarts by this host, in total.
        public var count: Int
        /// The exit that caused the last one, e.g. "QEMU was killed by signal 9".
        public var lastReason: String
        /// When the last one happened, Unix seconds; nil if not recorded.
        public var lastAt: Double?

        /// The fields as named.
        public init(count: Int, lastReason: String, lastAt: Double? = nil) {
            self.count = count
            self.lastReason = lastReason
            self.lastAt = lastAt
        }
    }

    /// The fields as named; the optional ones default to nil (QEMU not running, no problem).
    public init(id: String, name: String, state: String, pid: Int32? = nil, vcpus: Int, memoryMiB: Int,
                accelerator: String? = nil, qemuStatus: String? = nil, problem: String? = nil, epoch: Int64? = nil) {
        self.id = id
        self.name = name
        self.state = state
        self.pid = pid
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.accelerator = accelerator
        self.qemuStatus = qemuStatus
        self.problem = problem
        self.epoch = epoch
    }
}

/// What `hostmesh vm list/show` prints about a VM (the "VM info" of Protocol.md §7).
public struct VMInfo: Codable, Sendable, Equatable {
    /// VM id: the agent makes it a lower-case UUID at `vm.create`.
    public var id: String
    /// Name, unique on the host.
    public var name: String
    /// One of running, paused, stopped, crashed, migrating, incoming.
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
    /// Ownership epoch (advances at every completed handover); nil for a VM never handed over.
    public var epoch: Int64?

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

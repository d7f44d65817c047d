public import Hypervisor

/// A running VM leaving this host, as the registry hands it to a migration.
public struct OutgoingVM: Sendable {
    /// VM id.
    public var id: String
    /// VM name.
    public var name: String
    /// Ownership epoch the migration starts from.
    public var epoch: Int64
    /// Its spec.
    public var spec: VMSpec
    /// Its QEMU.
    public var process: VMProcess

    /// An outgoing VM.
    public init(id: String, name: String, epoch: Int64, spec: VMSpec, process: VMProcess) {
        self.id = id
        self.name = name
        self.epoch = epoch
        self.spec = spec
        self.process = process
    }
}

/// A VM this host has a record of.
public struct RegisteredVM: Sendable {
    /// VM id.
    public var id: String
    /// VM name.
    public var name: String
    /// Ownership epoch.
    public var epoch: Int64
    /// Why it is held (an in-doubt handover, a newer owner), if it is.
    public var hold: String?
    /// Its spec (nil if it does not decode).
    public var spec: VMSpec?

    /// A registered VM.
    public init(id: String, name: String, epoch: Int64, hold: String?, spec: VMSpec?) {
        self.id = id
        self.name = name
        self.epoch = epoch
        self.hold = hold
        self.spec = spec
    }
}

/// This host's VMs and their QEMUs, as migrations need them. Every method that marks a VM
/// (outgoing, incoming, recovering, in doubt) MUST claim it before its first suspension point, so
/// that no start, stop or other migration can act on it meanwhile.
public protocol MigrationVMRegistry: Sendable {
    /// Where a VM's QEMU keeps its sockets.
    func directory(for id: String) -> VMRuntimeDirectory
    /// Where disk images arriving by migration are created: `<storageRoot>/<migration id>/`
    /// (Protocol.md §6.7), so that a discarded migration's partial images go with its directory.
    var storageRoot: String { get }
    /// The other VM of this host whose spec names the image at `path`, if any (besides `vmID`).
    func otherUser(ofDisk path: String, besides vmID: String) async throws -> String?
    /// Marks a running VM as leaving; refused if it is held, busy or not running.
    func beginOutgoing(_ reference: String) async throws -> OutgoingVM
    /// Ends an outgoing migration. Released: its QEMU quits and its directory goes. In doubt: it
    /// stays marked so until settled.
    func endOutgoing(_ id: String, released: Bool, inDoubt: Bool) async
    /// Reserves `spec`'s id for an incoming migration (refused if it exists here or is busy).
    func reserveIncoming(_ spec: VMSpec) async throws
    /// Starts QEMU waiting for the stream, with the source's accelerator and guest RAM
    /// (`memoryKiB`); under a lease, after this host's keeper acquired it at `epoch` (the source's
    /// + 1) as `incoming` (Protocol.md §9.2).
    func beginIncoming(_ spec: VMSpec, epoch: Int64, accelerator: AcceleratorVerdict, memoryKiB: Int) async throws -> VMProcess
    /// The handover committed: under a lease, this host's keeper writes it as `held` from now on;
    /// returns once such a write completed. Throws when it cannot (the guest must not resume here).
    func promoteIncoming(_ id: String, epoch: Int64) async throws
    /// The incoming VM runs here: an ordinary VM from now on.
    func adoptIncoming(_ id: String) async
    /// Discards an incoming VM that did not arrive (QEMU, directory, ports) and ends its reservation.
    func abortIncoming(_ spec: VMSpec) async
    /// Kills a QEMU left by an incoming migration that never committed (after a restart).
    func discardOrphan(_ id: String) async
    /// A VM's running QEMU.
    func process(_ id: String) async -> VMProcess?
    /// Marks the VMs of unfinished migrations before the agent serves anyone.
    func beginRecovering(_ ids: Set<String>) async
    /// Recovery is done with a VM; in doubt, it stays marked so.
    func endRecovering(_ id: String, inDoubt: Bool) async
    /// A VM's in-doubt handover was settled.
    func settled(_ id: String) async
    /// A VM by name or id.
    func lookUp(_ reference: String) async throws -> RegisteredVM
}

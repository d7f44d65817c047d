public import Hypervisor

/// The virtual switch, as migrations move a VM's ports with it (Protocol.md §8.6).
public protocol MigrationPortMover: Sendable {
    /// `spec` with this host's own socket paths for its NICs.
    func localize(_ spec: VMSpec, directory: VMRuntimeDirectory) -> VMSpec
    /// Source: the ports' state, for the prepare.
    func exportPorts(_ spec: VMSpec) async throws -> [[UInt8]]
    /// Source: QEMU stopped the guest for the switchover (its STOP event), which moves to
    /// `destination` (a host id): frames for it are held from now on, and from `freeze` on sent
    /// to the destination at once (Protocol.md §8.6.1), until `unfreeze` or `forwardStragglers`.
    /// `stoppedAt`: the event's timestamp (seconds since the Unix epoch): the freeze also sends on
    /// copies of the frames handed to the stopped QEMU's socket since then.
    func guestPaused(_ spec: VMSpec, movingTo destination: String, stoppedAt: Double?) async
    /// Source: stops the ports and returns their final deltas, for the commit.
    func freeze(_ spec: VMSpec) async throws -> [[UInt8]]
    /// Source: the guest resumes here after all.
    func unfreeze(_ spec: VMSpec) async
    /// Source: frames still arriving here go to `host` for a while.
    func forwardStragglers(_ spec: VMSpec, to host: String) async
    /// Destination: creates the ports, blocked until the guest announces itself.
    func importPorts(_ spec: VMSpec, records: [[UInt8]]) async throws
    /// Destination: the final deltas from the commit.
    func apply(deltas: [[UInt8]]) async throws
    /// Destination, after the commit, just before the guest resumes here: the ports activate
    /// (Protocol.md §8.6 step 4), so the frames the guest sends at once are not dropped at a
    /// blocked port and what they held is in QEMU's socket when the guest runs.
    func resuming(_ spec: VMSpec) async
    /// Destination: the guest runs here.
    func resumed(_ spec: VMSpec) async
    /// Source: when the last frame from the guest reached its ports (seconds since the Unix
    /// epoch), for the switchover's timeline: how long before QEMU's STOP the guest fell silent.
    func lastFrameFromGuest(_ spec: VMSpec) async -> Double?
    /// Destination: the first frames from the guest after `resuming` activated its ports, in
    /// time order (seconds since the Unix epoch, and what kind: `arp`, `tcp-data`, …), for the
    /// switchover's timeline (`SwitchoverTrace`): what the guest sent first once it ran.
    func framesFromGuest(_ spec: VMSpec) async -> [(at: Double, kind: String)]
    /// Destination of a migration from another domain (Protocol.md §6.10): creates the VM's ports
    /// afresh on its networks as named here (no port state crosses a boundary that is not stretched).
    func attach(_ spec: VMSpec) async throws
    /// Source of a migration into another domain, once released: removes the VM's ports (no
    /// straggler crosses a boundary that is not stretched).
    func detach(_ spec: VMSpec) async
    /// Destination, pre-flight checklist (Protocol.md §6.9): throws, naming the network, when
    /// this host cannot switch the VM's NICs (a network it does not define).
    func checkNetworks(_ spec: VMSpec) async throws
}

extension MigrationPortMover {
    /// A mover that cannot hold frames: they go to the paused guest's socket as before.
    public func guestPaused(_ spec: VMSpec, movingTo destination: String, stoppedAt: Double?) async {}
    /// A mover whose ports activate at `resumed` (or on the guest's announcement).
    public func resuming(_ spec: VMSpec) async {}
    /// A mover that does not watch its ports' frames.
    public func framesFromGuest(_ spec: VMSpec) async -> [(at: Double, kind: String)] { [] }
    /// A mover that does not watch its ports' frames.
    public func lastFrameFromGuest(_ spec: VMSpec) async -> Double? { nil }
    /// A mover that checks nothing before a migration: the import refuses what it cannot switch.
    public func checkNetworks(_ spec: VMSpec) async throws {}
}

public import MeshTime

/// What the shell MUST do after handing an event to `RestartCore` (Protocol.md §9.1), in order.
public enum RestartDirective: Sendable, Equatable {
    /// Write `record` to the VM's durable row (new epoch, restart count, reason) in one
    /// transaction, only if the row still is at `record.previousEpoch`, wanted running and not
    /// held; then report `journaled`, `journalFailed` (the write failed) or `withdrawn` (the row
    /// changed: stopped, migrated, held). Nothing may start before this write is durable.
    case journal(RestartRecord)
    /// Start the VM's QEMU from its disks at `epoch` (already journaled); report `started` or
    /// `startFailed`.
    case start(epoch: Int64)
    /// Stop restarting: write `reason` to the VM's row (it stays failed and says why) and report
    /// nothing more. An operator's `vm start` begins afresh.
    case giveUp(reason: String)
}

/// One restart as journaled before it happens.
public struct RestartRecord: Sendable, Equatable {
    /// The epoch the dead copy ran at.
    public var previousEpoch: Int64
    /// The epoch the restarted copy runs at: `previousEpoch + 1`, so that the dead copy's
    /// epoch is stale everywhere (Protocol.md §6.6).
    public var epoch: Int64
    /// Restarts of this VM by this core so far, this one included.
    public var count: Int
    /// Why: the exit that caused it.
    public var reason: RestartExit

    /// A record.
    public init(previousEpoch: Int64, epoch: Int64, count: Int, reason: RestartExit) {
        self.previousEpoch = previousEpoch
        self.epoch = epoch
        self.count = count
        self.reason = reason
    }
}

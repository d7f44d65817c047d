/// `vm.move-storage` (Protocol.md §7, §6.8): move a running VM's disk to another file on its host.
public struct MoveStorageRequest: Codable, Sendable, ControlParameters {
    /// The VM's name or id.
    public var vm: String
    /// The disk: its index in the spec (0, 1, …) or its current path.
    public var disk: String
    /// An existing directory (the file keeps its name) or the new file's path (absolute; its
    /// directory must exist and the file must not).
    public var to: String

    /// A move of `vm`'s `disk` to `to`.
    public init(vm: String, disk: String, to: String) {
        self.vm = vm
        self.disk = disk
        self.to = to
    }

    public func validate() throws(ControlError) {
        try ControlParameter.nonEmpty("vm", vm)
        try ControlParameter.nonEmpty("disk", disk, expected: "a disk index (0, 1, …) or the disk's current path")
        try ControlParameter.nonEmpty("to", to, expected: "a directory or a file path")
        guard to.hasPrefix("/") else { throw .badRequest("to must be an absolute path (the agent resolves nothing against a client's working directory)") }
    }
}

/// What a storage move did.
public struct StorageMoveReport: Codable, Sendable, Equatable {
    public var vm: String
    /// The disk's index in the spec.
    public var disk: Int
    public var from: String
    public var to: String
    /// Bytes the mirror copied (QEMU's job length at the switch).
    public var bytes: UInt64
    /// From the request to the old file's removal, ms.
    public var totalMs: Double
    /// The guest's pause around the switch of files, ms.
    public var pauseMs: Double
    /// Whether the old file was deleted (false: another VM's spec names it, or deleting it failed).
    public var deletedOld: Bool

    public init(vm: String, disk: Int, from: String, to: String, bytes: UInt64, totalMs: Double, pauseMs: Double, deletedOld: Bool) {
        self.vm = vm
        self.disk = disk
        self.from = from
        self.to = to
        self.bytes = bytes
        self.totalMs = totalMs
        self.pauseMs = pauseMs
        self.deletedOld = deletedOld
    }
}

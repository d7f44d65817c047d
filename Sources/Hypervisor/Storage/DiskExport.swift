/// The destination side of a migration's local disks (Protocol.md §6.7): the incoming QEMU
/// (started with `-incoming defer` on freshly created images) serves each disk `disk<i>` as a
/// writable NBD export of the same name on a unix socket that only the agent connects to. QEMU
/// activates the images for writing when they are exported, before the memory stream arrives.
public struct DiskExport: Sendable {
    /// The destination QEMU.
    public let qmp: QMPClient
    /// The disks exported, by their index in the VM spec.
    public let indices: [Int]

    /// Exports of the disks at `indices` of the VM behind `qmp`.
    public init(qmp: QMPClient, indices: [Int]) {
        self.qmp = qmp
        self.indices = indices
    }

    /// Starts QEMU's NBD server on `socket` and exports each disk.
    public func start(socket: String) async throws(QMPError) {
        try await qmp.nbdServerStart(socket: socket)
        for index in indices {
            try await qmp.blockExportAddNBD(nodeName: DiskMirror.node(index), name: DiskMirror.export(index))
        }
    }

    /// Closes the NBD server and its exports: before the guest runs here, nothing else may write
    /// its disks.
    public func stop() async throws(QMPError) {
        try await qmp.nbdServerStop()
    }
}

/// Moving one disk of a running VM to another image file on the same host (Protocol.md §6.8,
/// the seed's Storage vMotion on its own): the disk's current node is mirrored
/// (`blockdev-mirror`, `sync=full`, `copy-mode=write-blocking`) into a node on the new file; once
/// the mirror is synchronised, with the guest paused, `block-job-complete` switches the device
/// over to it, and the old nodes are removed so QEMU closes the old file.
///
/// Write-blocking from the start: a guest write completes only once it is on both files, so the
/// mirror converges whatever the guest writes (QEMU 7.2 cannot switch a running job to active
/// mode), at the cost of one more local write per guest write while the move runs.
///
/// Order of use: `start`, `waitUntilReady`, then with the guest paused `pivot`; after the caller
/// has journaled the switch, `removeNodes` of the old node; on any failure before the pivot
/// completed, `abandon`.
public struct DiskMove: Sendable {
    /// The VM's QEMU.
    public let qmp: QMPClient
    /// The disk moved, by its index in the VM spec.
    public let index: Int
    /// The new image file (created by the caller, same format and virtual size).
    public let target: String
    /// The image format, as QEMU names the driver (`raw`, `qcow2`).
    public let format: String
    /// The target's format node; its file node is this name + `-file` (as every disk node here).
    public let targetNode: String
    /// How often `query-block-jobs` is polled while waiting.
    public var pollInterval: Duration = .milliseconds(50)

    /// A move of disk `index` to `target`; `tag` makes the new node names unique on this QEMU.
    public init(qmp: QMPClient, index: Int, target: String, format: String, tag: String) {
        self.qmp = qmp
        self.index = index
        self.target = target
        self.format = format
        targetNode = "disk\(index)m\(tag)"
    }

    /// The move's block job.
    public var job: String { Self.job(index) }

    /// The block job of a move of disk `index`.
    public static func job(_ index: Int) -> String { "move\(index)" }

    /// Adds the target's nodes and starts the mirror. Returns the disk's node and file before the
    /// move. On failure what was added is removed again before it throws.
    public func start() async throws(DiskMirrorError) -> (node: String, file: String) {
        let current: (node: String, file: String)
        do { current = try await qmp.diskNode(index) } catch {
            throw DiskMirrorError("cannot find disk \(index) in QEMU: \(error)")
        }
        do {
            try await qmp.blockdevAddImage(nodeName: targetNode, fileNode: targetNode + "-file", path: target, format: format,
                                           directIO: HostStorage.supportsDirectIO(path: target))
        } catch {
            throw DiskMirrorError("QEMU cannot open \(target): \(error)")
        }
        do {
            try await qmp.blockdevMirror(jobID: job, device: current.node, target: targetNode, writeBlocking: true)
        } catch {
            await Self.removeNodes(qmp: qmp, node: targetNode)
            throw DiskMirrorError("cannot start mirroring disk \(index) into \(target): \(error)")
        }
        return current
    }

    /// Waits until the mirror is synchronised, reporting the job after each poll.
    public func waitUntilReady(timeout: Duration, progress: @Sendable ([BlockJobInfo]) async -> Void = { _ in }) async throws(DiskMirrorError) -> BlockJobInfo {
        let jobs = try await BlockJobs.waitUntilReady(qmp: qmp, names: [job], timeout: timeout, pollInterval: pollInterval) { jobs throws(DiskMirrorError) in
            await progress(jobs)
        }
        guard let info = jobs.first else { throw DiskMirrorError("the mirror of disk \(index) is gone") }
        return info
    }

    /// Switches the guest's device to the target (the guest must be paused: nothing is written
    /// while the device changes files). Returns once QEMU reported the job completed and the
    /// device reads the target; throws otherwise (the caller then asks `diskNode` which file the
    /// device uses before deciding anything).
    public func pivot(timeout: Duration = .seconds(30)) async throws(DiskMirrorError) {
        let failures: [String]
        do {
            failures = try await BlockJobs.end(qmp: qmp, names: [job], timeout: timeout) { () throws(QMPError) in
                try await qmp.blockJobComplete(job)
            }
        } catch {
            throw DiskMirrorError("cannot switch disk \(index) to \(target): \(error)")
        }
        guard failures.isEmpty else { throw DiskMirrorError("the switch of disk \(index) to \(target) failed: \(failures.joined(separator: "; "))") }
        let now: (node: String, file: String)
        do { now = try await qmp.diskNode(index) } catch {
            throw DiskMirrorError("cannot confirm disk \(index)'s file after the switch: \(error)")
        }
        guard now.node == targetNode else {
            throw DiskMirrorError("disk \(index) still reads \(now.file) (node \(now.node)) after the switch")
        }
    }

    /// Stops the mirror at once and removes the target's nodes: the guest's device stays on its
    /// old file, untouched; the target is an incomplete copy to delete. Best effort.
    public func abandon() async {
        await Self.abandon(qmp: qmp, index: index, targetNode: targetNode)
    }

    /// `abandon` for a move known only by its disk and target node (a restarted agent's recovery).
    public static func abandon(qmp: QMPClient, index: Int, targetNode: String) async {
        await BlockJobs.cancel(qmp: qmp, names: [job(index)])
        await removeNodes(qmp: qmp, node: targetNode)
    }

    /// Removes a format node and its file node (`<node>-file`), so QEMU closes the file. Best
    /// effort: a node that is gone, or still in use (then QEMU refuses), is left as it is.
    public static func removeNodes(qmp: QMPClient, node: String) async {
        try? await qmp.blockdevDel(nodeName: node) // gone already, or still used: nothing to undo
        try? await qmp.blockdevDel(nodeName: node + "-file") // as above
    }
}

/// QMP commands for disk mirrors and NBD exports (QEMU 7.2 QAPI schema; the same commands libvirt
/// uses for `--copy-storage-all`: nbd-server-start and block-export-add on the destination,
/// blockdev-add of an NBD client and blockdev-mirror on the source).
extension QMPClient {
    /// `blockdev-add` of an NBD client node `nodeName` for `export` on the NBD server at the unix
    /// socket `path`. QEMU connects (and does the NBD handshake) before it answers.
    public func blockdevAddNBD(nodeName: String, socket path: String, export: String) async throws(QMPError) {
        try await execute("blockdev-add", arguments: .object([
            "driver": .string("nbd"),
            "node-name": .string(nodeName),
            "server": .object(["type": .string("unix"), "path": .string(path)]),
            "export": .string(export),
        ]), timeout: .seconds(30))
    }

    /// `blockdev-del`: removes a node nothing uses any more.
    public func blockdevDel(nodeName: String) async throws(QMPError) {
        try await execute("blockdev-del", arguments: .object(["node-name": .string(nodeName)]))
    }

    /// `blockdev-mirror` of `device` into `target` with `sync=full` as job `jobID`.
    /// `writeBlocking` selects `copy-mode=write-blocking` (active: a guest write completes only once
    /// it is on both); otherwise `background`.
    /// `speed` caps the copy rate in bytes/s (QEMU's rate limit; nil: none).
    /// `bufferBytes` is the job's `buf-size`: the most data in flight from source to target, in
    /// up to 16 requests of at least 1 MiB each (nil: QEMU's 16 MiB).
    public func blockdevMirror(jobID: String, device: String, target: String, writeBlocking: Bool = false, speed: Int64? = nil,
                               bufferBytes: Int64? = nil) async throws(QMPError) {
        var arguments: [String: JSONValue] = [
            "job-id": .string(jobID),
            "device": .string(device),
            "target": .string(target),
            "sync": .string("full"),
            "copy-mode": .string(writeBlocking ? "write-blocking" : "background"),
            "on-source-error": .string("stop"),
            "on-target-error": .string("report"),
        ]
        if let speed { arguments["speed"] = .int(speed) }
        if let bufferBytes { arguments["buf-size"] = .int(bufferBytes) }
        try await execute("blockdev-mirror", arguments: .object(arguments))
    }

    /// `block-job-cancel`. For a mirror that is ready and `force` false, QEMU copies what is still
    /// dirty and ends the job with the target consistent (BLOCK_JOB_COMPLETED), without switching
    /// the guest over to it; with `force`, it stops at once (the target is then incomplete).
    public func blockJobCancel(_ jobID: String, force: Bool) async throws(QMPError) {
        try await execute("block-job-cancel", arguments: .object(["device": .string(jobID), "force": .bool(force)]))
    }

    /// `block-job-set-speed`: the job's copy-rate cap, bytes/s (0: none).
    public func blockJobSetSpeed(_ jobID: String, bytesPerSecond: Int64) async throws(QMPError) {
        try await execute("block-job-set-speed", arguments: .object(["device": .string(jobID), "speed": .int(bytesPerSecond)]))
    }

    /// `block-job-change` (QEMU 8.2 and later): mirror job `jobID` copies in write-blocking mode
    /// from now on, without starting over. Older QEMU answers `CommandNotFound`.
    public func blockJobChangeToWriteBlocking(_ jobID: String) async throws(QMPError) {
        try await execute("block-job-change", arguments: .object(["id": .string(jobID), "type": .string("mirror"),
                                                                  "copy-mode": .string("write-blocking")]))
    }

    /// `query-block-jobs`: the block jobs that exist.
    public func queryBlockJobs() async throws(QMPError) -> [BlockJobInfo] {
        try await execute("query-block-jobs", returning: [BlockJobInfo].self)
    }

    /// `nbd-server-start` on the unix socket `path` (the destination side of a disk mirror).
    public func nbdServerStart(socket path: String) async throws(QMPError) {
        try await execute("nbd-server-start", arguments: .object([
            "addr": .object(["type": .string("unix"), "data": .object(["path": .string(path)])]),
        ]))
    }

    /// `block-export-add` of node `nodeName` as the writable NBD export `name` (id `name`).
    public func blockExportAddNBD(nodeName: String, name: String) async throws(QMPError) {
        try await execute("block-export-add", arguments: .object([
            "type": .string("nbd"),
            "id": .string(name),
            "node-name": .string(nodeName),
            "name": .string(name),
            "writable": .bool(true),
        ]))
    }

    /// `nbd-server-stop`: closes the NBD server and every export on it.
    public func nbdServerStop() async throws(QMPError) {
        try await execute("nbd-server-stop")
    }
}

/// One entry of `query-block-jobs`.
public struct BlockJobInfo: Decodable, Sendable, Equatable {
    /// The job's id.
    public var device: String
    /// Job type (`mirror`).
    public var type: String
    /// Bytes done so far (of `len`; both grow while the guest writes).
    public var offset: UInt64
    /// Bytes to do in total, as far as known.
    public var len: UInt64
    /// True once the mirror is synchronised (it stays so, copying new writes, until completed).
    public var ready: Bool
    /// `running`, `ready`, `paused`, `aborting`, `concluded`, …
    public var status: String
    /// An I/O error so far, if any.
    public var ioStatus: String?

    enum CodingKeys: String, CodingKey {
        case device, type, offset, len, ready, status
        case ioStatus = "io-status"
    }

    /// A job (tests).
    public init(device: String, type: String = "mirror", offset: UInt64, len: UInt64, ready: Bool, status: String, ioStatus: String? = nil) {
        self.device = device
        self.type = type
        self.offset = offset
        self.len = len
        self.ready = ready
        self.status = status
        self.ioStatus = ioStatus
    }
}

/// QMP for moving a running VM's disk to another file on the same host (Protocol.md §6.8).
extension QMPClient {
    /// `blockdev-add` of a `file` node `fileNode` for `path` and a format node `nodeName` of
    /// `format` on it: the target a disk is mirrored into and then switched to. `directIO` opens
    /// the file with O_DIRECT (`cache.direct`), as a disk in that directory would be at launch.
    public func blockdevAddImage(nodeName: String, fileNode: String, path: String, format: String, directIO: Bool) async throws(QMPError) {
        var file: [String: JSONValue] = ["driver": .string("file"), "node-name": .string(fileNode), "filename": .string(path)]
        if directIO { file["cache"] = .object(["direct": .bool(true)]) }
        try await execute("blockdev-add", arguments: .object(file))
        do {
            try await execute("blockdev-add", arguments: .object([
                "driver": .string(format), "node-name": .string(nodeName), "file": .string(fileNode),
            ]))
        } catch {
            try? await blockdevDel(nodeName: fileNode) // the format node failed: its file node has no user; removing it is tidying only
            throw error
        }
    }

    /// `block-job-complete`: a ready mirror switches the guest's device over to its target.
    public func blockJobComplete(_ jobID: String) async throws(QMPError) {
        try await execute("block-job-complete", arguments: .object(["device": .string(jobID)]))
    }

    /// The root node and image file of the guest's disk `index` (the device `disk<index>-dev`
    /// that `QEMUCommandLine` creates), as `query-block` reports them now: after a storage move
    /// the node is no longer `disk<index>`.
    public func diskNode(_ index: Int) async throws(QMPError) -> (node: String, file: String) {
        let devices = try await execute("query-block")
        guard case let .array(list) = devices else {
            throw QMPError.unexpectedResult(command: "query-block", expected: "an array", detail: "\(devices)")
        }
        for device in list {
            let qdev = device["qdev"]?.stringValue ?? ""
            guard qdev == "disk\(index)-dev" || qdev.contains("/disk\(index)-dev/"),
                  let inserted = device["inserted"], let node = inserted["node-name"]?.stringValue else { continue }
            return (node, inserted["file"]?.stringValue ?? "")
        }
        throw QMPError.commandFailed(command: "query-block", errorClass: "NotFound", description: "no device disk\(index)-dev with a medium")
    }
}

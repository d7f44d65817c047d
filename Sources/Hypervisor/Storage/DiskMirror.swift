/// The source side of a migration's local disks (Protocol.md §6.7): each disk `disk<i>` of the
/// running VM is mirrored (`blockdev-mirror`, `sync=full`) into an NBD client node `mirror<i>`
/// whose server is the destination QEMU's export `disk<i>`, reached through a unix socket the
/// agent tunnels. The guest keeps running on the source image, which stays the authoritative copy
/// until the handover: the mirror only ever writes the destination's.
///
/// Order of use: `start`, `waitUntilReady`, then with the guest paused at the migration's
/// switchover (`pause-before-switchover`) `complete`; on any failure `abandon`.
public struct DiskMirror: Sendable {
    /// The source QEMU.
    public let qmp: QMPClient
    /// The disks mirrored, by their index in the VM spec.
    public let indices: [Int]
    /// How often `query-block-jobs` is polled while waiting.
    public var pollInterval: Duration = .milliseconds(50)
    /// Each job's `buf-size`, bytes (nil: QEMU's 16 MiB): the most a job has in flight, in up to
    /// 16 requests of buf-size / 16 (at least 1 MiB) each.
    public var bufferBytes: Int64? = Self.defaultBufferBytes
    /// The default `bufferBytes` (README, "Storage migration"): QEMU's own 16 MiB, requests of
    /// 1 MiB. Since disks open with O_DIRECT, the copy's reads reach the device and a guest write
    /// queues behind what is in flight there: 64 MiB (4 MiB requests, session 31's choice for the
    /// round trips through the tunnel) doubled the guest's write p99 during the mirror for ~9% more
    /// copy rate through the tunnel. Allocated in the source QEMU per disk while its mirror runs.
    public static let defaultBufferBytes: Int64 = 16 << 20

    /// A mirror of the disks at `indices` of the VM behind `qmp`.
    public init(qmp: QMPClient, indices: [Int]) {
        self.qmp = qmp
        self.indices = indices
    }

    /// The QEMU node of the guest's disk `index` (as `QEMUCommandLine` names it).
    public static func node(_ index: Int) -> String { "disk\(index)" }
    /// The NBD export name of disk `index` on the destination.
    public static func export(_ index: Int) -> String { "disk\(index)" }
    /// The source's NBD client node and mirror job of disk `index`.
    public static func job(_ index: Int) -> String { "mirror\(index)" }

    /// Connects an NBD client per disk through `socket` and starts the mirrors (background mode,
    /// capped at `backgroundSpeed` bytes/s if given). On failure what
    /// was added is removed again before it throws.
    public func start(socket: String, backgroundSpeed: Int64? = nil) async throws(DiskMirrorError) {
        do {
            for index in indices {
                try await qmp.blockdevAddNBD(nodeName: Self.job(index), socket: socket, export: Self.export(index))
                // The disk's node now: `disk<i>` unless a storage move (§6.8) switched it to another.
                let device = try await qmp.diskNode(index).node
                try await qmp.blockdevMirror(jobID: Self.job(index), device: device, target: Self.job(index), speed: backgroundSpeed,
                                             bufferBytes: bufferBytes)
            }
        } catch {
            await abandon()
            throw DiskMirrorError("cannot start mirroring the disks: \(error)")
        }
    }

    /// Waits until every mirror is synchronised (ready), reporting the jobs after each poll.
    /// Throws when a job fails or disappears, or when `timeout` passes first.
    ///
    /// With `stallAfter`, a disk whose mirror makes no progress for that long (`MirrorConvergence`)
    /// switches to write-blocking mode, in place on QEMU 8.2 and later (`block-job-change`: what
    /// is copied stays copied); on an older QEMU its background job is cancelled and a
    /// write-blocking one started into the same target, which copies the disk again. Either way
    /// the guest cannot outrun it afterwards. `backgroundSpeed` caps the
    /// background jobs' copy rate (bytes/s); a write-blocking job runs uncapped.
    /// Returns the jobs when ready, and the disks (by index) that switched.
    public func waitUntilReady(timeout: Duration, stallAfter: Duration? = nil,
                               progress: @Sendable ([BlockJobInfo]) async -> Void = { _ in }) async throws(DiskMirrorError) -> (jobs: [BlockJobInfo], writeBlocking: Set<Int>) {
        var convergence = stallAfter.map(MirrorConvergence.init(stallAfter:))
        let started = ContinuousClock.now
        let jobs = try await BlockJobs.waitUntilReady(qmp: qmp, names: Set(indices.map(Self.job)), timeout: timeout, pollInterval: pollInterval) { jobs throws(DiskMirrorError) in
            await progress(jobs)
            guard var detector = convergence else { return }
            for job in detector.observe(jobs, at: ContinuousClock.now - started) {
                guard let index = indices.first(where: { Self.job($0) == job }) else { continue }
                try await switchToWriteBlocking(index)
                detector.switched(job)
            }
            convergence = detector
        }
        let switched = Set(indices.filter { convergence?.writeBlocking.contains(Self.job($0)) == true })
        return (jobs, switched)
    }

    /// Lifts the background copy-rate cap of every mirror (once they are ready): what the guest
    /// writes after that is copied at once, so the switchover's pause has no capped tail to wait
    /// for. Best effort: a job that is gone, or refuses, keeps its cap and only completes slower;
    /// returns what each refusal said (job id and QEMU's error), for the caller's log.
    public func uncap() async -> [String] {
        var refusals: [String] = []
        for index in indices {
            do { try await qmp.blockJobSetSpeed(Self.job(index), bytesPerSecond: 0) } catch {
                refusals.append("\(Self.job(index)): \(error)")
            }
        }
        return refusals
    }

    /// Switches disk `index`'s mirror to write-blocking mode: in place where QEMU can (8.2 and
    /// later), else by replacing the background job with a write-blocking one into the same
    /// target, with QEMU's own buffer (16 MiB, requests of 1 MiB), not `bufferBytes`: in this mode
    /// every guest write waits until it is on the target, queued on the one NBD connection behind
    /// the copy's requests in flight, so less in flight is a shorter wait for the guest.
    private func switchToWriteBlocking(_ index: Int) async throws(DiskMirrorError) {
        do {
            try await qmp.blockJobChangeToWriteBlocking(Self.job(index))
            // A write-blocking job runs uncapped, as one started so would.
            try await qmp.blockJobSetSpeed(Self.job(index), bytesPerSecond: 0)
            return
        } catch .commandFailed("block-job-change", "CommandNotFound", _) {
            // QEMU before 8.2: restart the job in that mode, below.
        } catch {
            throw DiskMirrorError("disk \(index) did not converge and its mirror could not switch to write-blocking mode: \(error)")
        }
        await BlockJobs.cancel(qmp: qmp, names: [Self.job(index)])
        do {
            let device = try await qmp.diskNode(index).node
            try await qmp.blockdevMirror(jobID: Self.job(index), device: device, target: Self.job(index), writeBlocking: true,
                                         bufferBytes: nil)
        } catch {
            throw DiskMirrorError("disk \(index) did not converge and its mirror could not restart in write-blocking mode: \(error)")
        }
    }

    /// Ends every ready mirror with its target consistent (the guest must be paused, so nothing
    /// new is written): `block-job-cancel` without force copies what is still dirty and ends the
    /// job without switching the guest to the target. Returns once every job has ended and its
    /// NBD client is gone; throws when a job ended with an error (the target is then not to be used).
    public func complete(timeout: Duration = .seconds(30)) async throws(DiskMirrorError) {
        let failures: [String]
        do {
            failures = try await BlockJobs.end(qmp: qmp, names: Set(indices.map(Self.job)), timeout: timeout) { () throws(QMPError) in
                for index in indices { try await qmp.blockJobCancel(Self.job(index), force: false) }
            }
        } catch {
            await abandon()
            throw DiskMirrorError("cannot complete the disk mirrors: \(error)")
        }
        guard failures.isEmpty else {
            await abandon()
            throw DiskMirrorError("the disk mirrors did not complete: \(failures.joined(separator: "; "))")
        }
        for index in indices { await removeTarget(index) }
    }

    /// Stops every mirror at once and removes the NBD clients: the source image is untouched and
    /// stays the guest's; the destination's partial copy is to be discarded. Best effort: a job or
    /// node that is already gone needs nothing.
    public func abandon() async {
        await BlockJobs.cancel(qmp: qmp, names: Set(indices.map(Self.job)))
        for index in indices { await removeTarget(index) }
    }

    private func removeTarget(_ index: Int) async {
        // Never added, or removed already: nothing holds the destination's export open then.
        try? await qmp.blockdevDel(nodeName: Self.job(index))
    }
}

/// A disk mirror that could not start, synchronise or complete.
public struct DiskMirrorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, for the operator.
    public var description: String
    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}

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

    /// Connects an NBD client per disk through `socket` and starts the mirrors. On failure what
    /// was added is removed again before it throws.
    public func start(socket: String) async throws(DiskMirrorError) {
        do {
            for index in indices {
                try await qmp.blockdevAddNBD(nodeName: Self.job(index), socket: socket, export: Self.export(index))
                try await qmp.blockdevMirror(jobID: Self.job(index), device: Self.node(index), target: Self.job(index))
            }
        } catch {
            await abandon()
            throw DiskMirrorError("cannot start mirroring the disks: \(error)")
        }
    }

    /// Waits until every mirror is synchronised (ready), reporting the jobs after each poll.
    /// Throws when a job fails or disappears, or when `timeout` passes first.
    public func waitUntilReady(timeout: Duration, progress: @Sendable ([BlockJobInfo]) async -> Void = { _ in }) async throws(DiskMirrorError) -> [BlockJobInfo] {
        let events = qmp.events()
        let failures = Task { () -> String? in
            for await event in events where event.name == "BLOCK_JOB_COMPLETED" || event.name == "BLOCK_JOB_ERROR" {
                let job = event.data["device"]?.stringValue ?? "?"
                return "\(job): \(event.data["error"]?.stringValue ?? event.data["action"]?.stringValue ?? "ended before it was ready")"
            }
            return nil
        }
        defer { failures.cancel() }
        let deadline = ContinuousClock.now + timeout
        let names = Set(indices.map(Self.job))
        while true {
            let jobs: [BlockJobInfo]
            do { jobs = try await qmp.queryBlockJobs().filter { names.contains($0.device) } } catch {
                throw DiskMirrorError("cannot follow the disk mirrors: \(error)")
            }
            await progress(jobs)
            if jobs.count < names.count {
                let missing = names.subtracting(jobs.map(\.device)).sorted()
                // QEMU reported why before it answered the query; give the watcher a moment to read it.
                let reason = await withTaskGroup(of: String?.self) { group in
                    group.addTask { await failures.value }
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(200)) // cancelled: the reason came first
                        failures.cancel()
                        return nil
                    }
                    let first = await group.next() ?? nil
                    group.cancelAll()
                    return first
                }
                throw DiskMirrorError("disk mirror \(missing.joined(separator: ", ")) ended before it was synchronised" + (reason.map { " (\($0))" } ?? ""))
            }
            if let failed = jobs.first(where: { $0.ioStatus == "failed" || $0.ioStatus == "nospace" }) {
                throw DiskMirrorError("disk mirror \(failed.device) has an I/O error (\(failed.ioStatus ?? ""))")
            }
            if jobs.allSatisfy(\.ready) { return jobs }
            guard ContinuousClock.now < deadline else {
                throw DiskMirrorError("the disk mirrors were not synchronised within \(timeout)")
            }
            do { try await Task.sleep(for: pollInterval) } catch { throw DiskMirrorError("cancelled while waiting for the disk mirrors") }
        }
    }

    /// Ends every ready mirror with its target consistent (the guest must be paused, so nothing
    /// new is written): `block-job-cancel` without force copies what is still dirty and ends the
    /// job without switching the guest to the target. Returns once every job has ended and its
    /// NBD client is gone; throws when a job ended with an error (the target is then not to be used).
    public func complete(timeout: Duration = .seconds(30)) async throws(DiskMirrorError) {
        let events = qmp.events()
        let names = Set(indices.map(Self.job))
        let ended = Task { () -> [String: String?] in
            var outcome: [String: String?] = [:]
            for await event in events {
                guard let job = event.data["device"]?.stringValue, names.contains(job) else { continue }
                switch event.name {
                case "BLOCK_JOB_COMPLETED": outcome[job] = .some(event.data["error"]?.stringValue)
                case "BLOCK_JOB_CANCELLED": outcome[job] = .some("cancelled before it was synchronised")
                default: continue
                }
                if outcome.count == names.count { break }
            }
            return outcome
        }
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            ended.cancel()
        }
        defer { watchdog.cancel() }
        do {
            for index in indices { try await qmp.blockJobCancel(Self.job(index), force: false) }
        } catch {
            ended.cancel()
            await abandon()
            throw DiskMirrorError("cannot complete the disk mirrors: \(error)")
        }
        let outcome = await ended.value
        let failures = names.sorted().compactMap { job -> String? in
            switch outcome[job] {
            case .some(.none): return nil
            case .some(.some(let error)): return "\(job): \(error)"
            case .none: return "\(job): no end reported within \(timeout)"
            }
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
        let names = Set(indices.map(Self.job))
        for index in indices {
            // Already ended, or never started: nothing to cancel.
            try? await qmp.blockJobCancel(Self.job(index), force: true)
        }
        for _ in 0..<100 {
            // QEMU gone: the jobs are gone with it.
            guard let jobs = try? await qmp.queryBlockJobs(), jobs.contains(where: { names.contains($0.device) }) else { break }
            try? await Task.sleep(for: .milliseconds(20)) // a cancelled wait only shortens the bounded loop
        }
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

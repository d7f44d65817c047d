/// Waiting on QEMU block jobs (mirrors): shared by a migration's disk mirrors (`DiskMirror`) and
/// a storage move on one host (`DiskMove`).
enum BlockJobs {
    /// Polls `query-block-jobs` until every job in `names` is ready (synchronised), reporting the
    /// jobs after each poll. Throws when a job fails or disappears, or when `timeout` passes first.
    /// Besides every `pollInterval`, it polls at once when QEMU reports a job ready
    /// (`BLOCK_JOB_READY`): the migration goes on the moment the last mirror is synchronised, not
    /// up to a poll interval later.
    /// `progress` may act on the jobs (switch one to another mode) and throw to end the wait.
    static func waitUntilReady(qmp: QMPClient, names: Set<String>, timeout: Duration, pollInterval: Duration,
                               progress: ([BlockJobInfo]) async throws(DiskMirrorError) -> Void) async throws(DiskMirrorError) -> [BlockJobInfo] {
        let events = qmp.events()
        let failures = Task { () -> String? in
            for await event in events where event.name == "BLOCK_JOB_COMPLETED" || event.name == "BLOCK_JOB_ERROR" {
                let job = event.data["device"]?.stringValue ?? "?"
                return "\(job): \(event.data["error"]?.stringValue ?? event.data["action"]?.stringValue ?? "ended before it was ready")"
            }
            return nil
        }
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let readyEvents = qmp.events()
        let readyWaker = Task {
            for await event in readyEvents where event.name == "BLOCK_JOB_READY" && names.contains(event.data["device"]?.stringValue ?? "") { wake.yield() }
        }
        let ticker = Task { while (try? await Task.sleep(for: pollInterval)) != nil { wake.yield() } } // cancelled: the ticker ends
        defer {
            failures.cancel()
            readyWaker.cancel()
            ticker.cancel()
            wake.finish()
        }
        var wakeups = wakes.makeAsyncIterator()
        let deadline = ContinuousClock.now + timeout
        while true {
            let jobs: [BlockJobInfo]
            do { jobs = try await qmp.queryBlockJobs().filter { names.contains($0.device) } } catch {
                throw DiskMirrorError("cannot follow the disk mirrors: \(error)")
            }
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
            if jobs.allSatisfy(\.ready) {
                try await progress(jobs)
                return jobs
            }
            try await progress(jobs)
            guard ContinuousClock.now < deadline else {
                throw DiskMirrorError("the disk mirrors were not synchronised within \(timeout)")
            }
            guard await wakeups.next() != nil, !Task.isCancelled else { throw DiskMirrorError("cancelled while waiting for the disk mirrors") }
        }
    }

    /// Runs `end` (which asks QEMU to end the jobs in `names`) and waits until each has ended,
    /// for at most `timeout`. Returns the failures, one line per job that ended with an error,
    /// was cancelled, or reported nothing in time; empty when every job completed cleanly.
    static func end(qmp: QMPClient, names: Set<String>, timeout: Duration,
                    by end: () async throws(QMPError) -> Void) async throws(QMPError) -> [String] {
        let events = qmp.events()
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
        do { try await end() } catch {
            ended.cancel()
            throw error
        }
        let outcome = await ended.value
        return names.sorted().compactMap { job -> String? in
            switch outcome[job] {
            case .some(.none): return nil
            case .some(.some(let error)): return "\(job): \(error)"
            case .none: return "\(job): no end reported within \(timeout)"
            }
        }
    }

    /// Force-cancels the jobs in `names` and waits (bounded, ~2 s) until QEMU no longer lists
    /// them. Best effort: a job that is already gone needs nothing.
    static func cancel(qmp: QMPClient, names: Set<String>) async {
        for name in names.sorted() {
            // Already ended, or never started: nothing to cancel.
            try? await qmp.blockJobCancel(name, force: true)
        }
        for _ in 0..<100 {
            // QEMU gone: the jobs are gone with it.
            guard let jobs = try? await qmp.queryBlockJobs(), jobs.contains(where: { names.contains($0.device) }) else { break }
            try? await Task.sleep(for: .milliseconds(20)) // a cancelled wait only shortens the bounded loop
        }
    }
}

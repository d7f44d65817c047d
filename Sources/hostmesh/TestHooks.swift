import Foundation
import Migration
import Hypervisor
import MeshWire
import MigrationService

/// Fault-injection hooks for the end-to-end tests, read from the environment by this executable
/// only (never set in production): with `HOSTMESH_TEST_PAUSE_AT=<role>:<phase>` the agent, right
/// after journaling that phase (or, for `recovery:<role>`, before recovering an unfinished
/// migration of that role), creates `<state_dir>/test-paused-at` and waits until
/// `<state_dir>/test-continue` exists, so a test can kill something at exactly that point.
/// `HOSTMESH_TEST_CUT_AT=<role>:<phase>` makes the agent drop its control channel there instead
/// (a cut connection). `HOSTMESH_TEST_FAIL_JOURNAL_AT=source:<phase>` makes the journal write of
/// that phase fail, as a full or broken disk would.
///
/// Pause and cut set to `file` read the point afresh at every phase from
/// `<state_dir>/test-pause-at` (or `test-cut-at`; absent or empty: nowhere), so one long-running
/// agent can be paused at a different point for each case of a fault matrix without a restart.
struct TestHooks: MigrationObserver {
    let pauseAt: String?
    let cutAt: String?
    let failJournalAt: String?
    let stateDirectory: String

    init(stateDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.stateDirectory = stateDirectory
        pauseAt = environment["HOSTMESH_TEST_PAUSE_AT"]
        cutAt = environment["HOSTMESH_TEST_CUT_AT"]
        failJournalAt = environment["HOSTMESH_TEST_FAIL_JOURNAL_AT"]
    }

    /// The seams these hooks need, or the production ones when none is set.
    var seams: MigrationTestSeams {
        guard pauseAt != nil || cutAt != nil || failJournalAt != nil else { return MigrationTestSeams() }
        let failAt = failJournalAt
        return MigrationTestSeams(observer: self) { journal in
            guard let failAt else { return journal }
            return FailingJournal(wrapped: journal, failsAt: failAt)
        }
    }

    /// The point in force: the variable's value, or the file's content in `file` mode.
    private func point(_ setting: String?, file: String) -> String? {
        guard setting == "file" else { return setting }
        guard let data = FileManager.default.contents(atPath: stateDirectory + "/" + file) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    func reached(_ point: MigrationPoint) async {
        guard let pauseAt, "\(point)" == self.point(pauseAt, file: "test-pause-at") else { return }
        _ = FileManager.default.createFile(atPath: stateDirectory + "/test-paused-at", contents: Data("\(point)".utf8)) // the test waits for it; a failure shows there
        while !FileManager.default.fileExists(atPath: stateDirectory + "/test-continue") {
            // The test creates the file, or kills this process; a cancelled wait goes on polling.
            try? await Task.sleep(for: .milliseconds(20))
        }
        // Gone once this pause is over, so a test can wait until the agent really went on (and
        // never mistakes this pause for a later one).
        try? FileManager.default.removeItem(atPath: stateDirectory + "/test-paused-at") // absent already: nothing to say
    }

    func cutsChannel(at point: MigrationPoint) -> Bool { cutAt != nil && "\(point)" == self.point(cutAt, file: "test-cut-at") }
}

/// A journal whose write of one source phase fails, as a full or broken disk would.
struct FailingJournal: MigrationJournaling {
    let wrapped: any MigrationJournaling
    /// `source:<phase>`.
    let failsAt: String

    struct InjectedFailure: Error, CustomStringConvertible {
        let point: String
        var description: String { "test hook: the journal refused the write at \(point)" }
    }

    func beginSource(id: String, vmID: String, vmName: String, epoch: Int64, peerAddress: String) async throws {
        if failsAt == "source:requested" { throw InjectedFailure(point: failsAt) }
        try await wrapped.beginSource(id: id, vmID: vmID, vmName: vmName, epoch: epoch, peerAddress: peerAddress)
    }
    func setSourcePhase(_ id: String, _ phase: SourceMigration.Phase, peer: String?, error: String?, result: String?) async throws {
        if failsAt == "\(MigrationPoint.source(phase))" { throw InjectedFailure(point: failsAt) }
        try await wrapped.setSourcePhase(id, phase, peer: peer, error: error, result: result)
    }
    func hold(vm: String, reason: String) async throws {
        if failsAt == "source:hold" { throw InjectedFailure(point: failsAt) }
        try await wrapped.hold(vm: vm, reason: reason)
    }
    func release(migration id: String, vm: String, to owner: String, epoch: Int64) async throws {
        try await wrapped.release(migration: id, vm: vm, to: owner, epoch: epoch)
    }
    func reclaim(vm: String, epoch: Int64) async throws { try await wrapped.reclaim(vm: vm, epoch: epoch) }
    func beginDestination(id: String, spec: VMSpec, source: String, epoch: Int64) async throws {
        try await wrapped.beginDestination(id: id, spec: spec, source: source, epoch: epoch)
    }
    func commitDestination(id: String, spec: VMSpec, epoch: Int64, source: String, evidence: [Hostmesh_V1_OwnershipEvidenceLink]) async throws {
        try await wrapped.commitDestination(id: id, spec: spec, epoch: epoch, source: source, evidence: evidence)
    }
    func setDestinationRunning(_ id: String) async throws { try await wrapped.setDestinationRunning(id) }
    func discardDestination(id: String, vm: String, epoch: Int64, reason: String) async throws {
        try await wrapped.discardDestination(id: id, vm: vm, epoch: epoch, reason: reason)
    }
    func unfinished() async throws -> [JournaledMigration] { try await wrapped.unfinished() }
    func migration(_ id: String) async throws -> JournaledMigration? { try await wrapped.migration(id) }
    func newerOwner(of vm: String, above epoch: Int64) async throws -> OwnershipClaim? { try await wrapped.newerOwner(of: vm, above: epoch) }
}

extension TestHooks {
    /// `HOSTMESH_TEST_LEASE_FAIL_IF=<path>`: while that file exists, the lease keeper's writes
    /// fail as writes to a storage that is cut off would (issue 20's "cut its storage").
    static func leaseWriteFailure(environment: [String: String] = ProcessInfo.processInfo.environment) -> @Sendable () -> String? {
        guard let path = environment["HOSTMESH_TEST_LEASE_FAIL_IF"] else { return { nil } }
        return { FileManager.default.fileExists(atPath: path) ? "test: lease writes fail while \(path) exists" : nil }
    }

    /// `HOSTMESH_TEST_LEASE_SLOW_IF=<path>`: while that file exists, each lease renewal waits the
    /// milliseconds the file holds before it writes, as a write to a slow storage would.
    static func leaseWriteDelay(environment: [String: String] = ProcessInfo.processInfo.environment) -> @Sendable () -> Duration? {
        guard let path = environment["HOSTMESH_TEST_LEASE_SLOW_IF"] else { return { nil } }
        return {
            // Absent: writes are not slowed; unreadable or not a number: neither.
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                  let milliseconds = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
            return .milliseconds(milliseconds)
        }
    }
}

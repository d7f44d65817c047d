import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshIdentity
import MeshWire
import Migration
import MigrationService
import NIOConcurrencyHelpers
import SecureChannel

/// What a fake journal does when asked.
struct JournalFailures: Sendable {
    var reads = false
    var ownership = false
    var hold = false
}

struct InjectedStoreFailure: Error, CustomStringConvertible {
    var description: String { "disk I/O error (injected)" }
}

/// An in-memory journal whose reads and writes can be made to fail, as a broken store would.
final class FakeJournal: MigrationJournaling {
    let rows = NIOLockedValueBox<[String: JournaledMigration]>([:])
    let holds = NIOLockedValueBox<[String: String]>([:])
    let failures: NIOLockedValueBox<JournalFailures>

    init(failures: JournalFailures = JournalFailures(), rows: [JournaledMigration] = []) {
        self.failures = NIOLockedValueBox(failures)
        self.rows.withLockedValue { for row in rows { $0[row.id] = row } }
    }

    private func failReads() throws { if failures.withLockedValue({ $0.reads }) { throw InjectedStoreFailure() } }

    func beginSource(id: String, vmID: String, vmName: String, epoch: Int64, peerAddress: String) async throws {
        rows.withLockedValue { $0[id] = JournaledMigration(id: id, vmID: vmID, vmName: vmName, role: .source, peer: peerAddress,
                                                           peerAddress: peerAddress, phase: "requested", epoch: epoch, error: nil, ended: false) }
    }
    func setSourcePhase(_ id: String, _ phase: SourceMigration.Phase, peer: String?, error: String?, result: String?) async throws {
        rows.withLockedValue {
            $0[id]?.phase = phase.rawValue
            if phase == .done || phase == .aborted { $0[id]?.ended = true }
        }
    }
    func hold(vm: String, reason: String) async throws {
        if failures.withLockedValue({ $0.hold }) { throw InjectedStoreFailure() }
        holds.withLockedValue { $0[vm] = reason }
    }
    func release(migration id: String, vm: String, to owner: String, epoch: Int64) async throws {}
    func reclaim(vm: String, epoch: Int64) async throws {}
    func beginDestination(id: String, spec: VMSpec, source: String, epoch: Int64) async throws {}
    func commitDestination(id: String, spec: VMSpec, epoch: Int64, source: String, evidence: [Hostmesh_V1_OwnershipEvidenceLink]) async throws {}
    func setDestinationRunning(_ id: String) async throws {}
    func discardDestination(id: String, vm: String, epoch: Int64, reason: String) async throws {}
    func unfinished() async throws -> [JournaledMigration] {
        try failReads()
        return rows.withLockedValue { Array($0.values.filter { !$0.ended }) }
    }
    func migration(_ id: String) async throws -> JournaledMigration? {
        try failReads()
        return rows.withLockedValue { $0[id] }
    }
    func newerOwner(of vm: String, above epoch: Int64) async throws -> OwnershipClaim? {
        if failures.withLockedValue({ $0.ownership }) { throw InjectedStoreFailure() }
        return nil
    }
}

/// A registry with no QEMU: it records what the coordinator marks.
actor FakeRegistry: MigrationVMRegistry {
    var reserved: [String] = []
    /// The guest RAM each incoming QEMU was asked to start with, by VM id.
    var incomingMemoryKiB: [String: Int] = [:]
    var recovering: Set<String> = []
    var endedRecovering: [String: Bool] = [:]
    var known: [String: RegisteredVM] = [:]

    init(known: [RegisteredVM] = []) { for vm in known { self.known[vm.id] = vm } }

    nonisolated func directory(for id: String) -> VMRuntimeDirectory { VMRuntimeDirectory(path: "/nonexistent/\(id)") }
    nonisolated var storageRoot: String { "/nonexistent/disks" }
    func otherUser(ofDisk path: String, besides vmID: String) async throws -> String? { nil }
    /// VMs whose `beginOutgoing` waits (reporting on `outgoingHeld`) until `releaseOutgoing`.
    var gatedOutgoing: Set<String> = []
    private var outgoingWaiting: [String: CheckedContinuation<Void, Never>] = [:]
    let (outgoingHeld, outgoingHeldReport) = AsyncStream.makeStream(of: String.self)
    /// VMs `beginOutgoing` was called for, in order: a migration that got that far had its slot.
    var outgoingBegun: [String] = []

    func gateOutgoing(_ reference: String) { gatedOutgoing.insert(reference) }
    func releaseOutgoing(_ reference: String) {
        gatedOutgoing.remove(reference)
        outgoingWaiting.removeValue(forKey: reference)?.resume()
    }
    func beginOutgoing(_ reference: String) async throws -> OutgoingVM {
        outgoingBegun.append(reference)
        if gatedOutgoing.contains(reference) {
            outgoingHeldReport.yield(reference)
            await withCheckedContinuation { outgoingWaiting[reference] = $0 }
        }
        throw ControlError.conflict("no QEMU in this test")
    }
    func endOutgoing(_ id: String, released: Bool, inDoubt: Bool) async {}
    /// When set, `reserveIncoming` waits here (reporting each waiter on `held`) until `openGate`.
    var gated = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
    let (held, heldReport) = AsyncStream.makeStream(of: String.self)

    func closeGate() { gated = true }
    func openGate() {
        gated = false
        for waiter in waiting { waiter.resume() }
        waiting = []
    }
    func reserveIncoming(_ spec: VMSpec) async throws {
        reserved.append(spec.id)
        if gated {
            heldReport.yield(spec.id)
            await withCheckedContinuation { waiting.append($0) }
        }
    }
    func beginIncoming(_ spec: VMSpec, epoch: Int64, accelerator: AcceleratorVerdict, memoryKiB: Int) async throws -> VMProcess {
        incomingMemoryKiB[spec.id] = memoryKiB
        throw ControlError.failed("no QEMU in this test")
    }
    func promoteIncoming(_ id: String, epoch: Int64) async throws {}
    func adoptIncoming(_ id: String) async {}
    func abortIncoming(_ spec: VMSpec) async {}
    func discardOrphan(_ id: String) async {}
    func process(_ id: String) async -> VMProcess? { nil }
    func beginRecovering(_ ids: Set<String>) async { recovering.formUnion(ids) }
    func endRecovering(_ id: String, inDoubt: Bool) async {
        recovering.remove(id)
        endedRecovering[id] = inDoubt
    }
    func settled(_ id: String) async {}
    func lookUp(_ reference: String) async throws -> RegisteredVM {
        guard let vm = known[reference] ?? known.values.first(where: { $0.name == reference }) else { throw ControlError.notFound("no VM \(reference)") }
        return vm
    }
}

/// Log lines at warning and above, kept for the test to read.
final class CollectedLogs: Sendable {
    let lines = NIOLockedValueBox<[String]>([])
    var text: String { lines.withLockedValue { $0.joined(separator: "\n") } }
}

struct CollectingLogHandler: LogHandler {
    let logs: CollectedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        logs.lines.withLockedValue { $0.append("\(event.level) \(event.message) \(all.map { "\($0)=\($1)" }.sorted().joined(separator: " "))") }
    }
}

enum Fixtures {
    static let domain = try! DomainAuthority(name: "lab")

    static func credentials(_ id: String) -> ChannelCredentials {
        let now = Int64(Date().timeIntervalSince1970)
        let identity = try! HostIdentity(hostID: id)
        let cert = domain.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 3600)
        return ChannelCredentials(identity: identity, certificate: cert, trust: TrustStore(anchors: [domain.trustAnchor]))
    }

    static func coordinator(journal: FakeJournal, vms: FakeRegistry, logs: CollectedLogs = CollectedLogs()) -> MigrationCoordinator {
        MigrationCoordinator(journal: journal, vms: vms, ports: nil, credentials: credentials("node-b"),
                             logger: Logger(label: "test") { _ in CollectingLogHandler(logs: logs) })
    }
}

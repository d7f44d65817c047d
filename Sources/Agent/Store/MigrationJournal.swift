import ControlAPI
import Foundation
import GRDB
import Hypervisor
import Logging
import Migration
import CoreMetrics
import MeshTime
import MeshIdentity
import MeshWire
import MigrationService

/// Durable records of migrations and ownership in the agent's SQLite store (Protocol.md §6.4).
/// Every write is one SQLite transaction with synchronous=FULL: when a function returns, the
/// change survives a crash or a power loss; when it throws, nothing of it was written.
struct MigrationJournal: MigrationJournaling {
    let store: AgentStore
    /// This host: its own ownership records never count as a newer owner.
    let hostID: String
    let logger: Logger
    /// Whether this host runs leases (Protocol.md §9.2): a released VM's ownership row then
    /// names its lease directory, which moved with it (the new owner's own record settles it).
    var leases = false
    /// Signs and checks handover evidence (Protocol.md §6.12); nil: none is signed or kept.
    var evidence: HandoverEvidence? = nil

    /// Journal write latency (one SQLite transaction with fsync), through swift-metrics.
    static let writeLatency = "hostmesh_journal_write_seconds"

    /// One write transaction, timed into `writeLatency` whether it succeeds or not.
    private func timedWrite<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let started = ContinuousClock.now
        defer { CoreMetrics.Timer(label: Self.writeLatency).recordNanoseconds((ContinuousClock.now - started).wholeNanoseconds) }
        return try await store.database.write(updates)
    }

    func beginSource(id: String, vmID: String, vmName: String, epoch: Int64, peerAddress: String) async throws {
        try await timedWrite { db in
            try StoredMigration(id: id, vmId: vmID, vmName: vmName, role: MigrationRole.source.rawValue, peer: peerAddress,
                                phase: SourceMigration.Phase.requested.rawValue, startedAt: Date().timeIntervalSince1970,
                                peerAddress: peerAddress, epoch: epoch).insert(db)
        }
    }

    func setSourcePhase(_ id: String, _ phase: SourceMigration.Phase, peer: String?, error: String?, result: String?) async throws {
        // In doubt is not an end: the retry loop and recovery pick it up.
        try await setPhase(id, phase.rawValue, peer: peer, error: error, result: result, ended: phase == .done || phase == .aborted)
    }

    func setDestinationRunning(_ id: String) async throws {
        try await setPhase(id, DestinationMigration.Phase.running.rawValue, ended: true)
    }

    private func setPhase(_ id: String, _ phase: String, peer: String? = nil, error: String? = nil, result: String? = nil, ended: Bool) async throws {
        try await timedWrite { db in
            guard var row = try StoredMigration.fetchOne(db, key: id) else {
                throw MigrationServiceError.journal("migration \(id) has no journal row")
            }
            row.phase = phase
            if let peer { row.peer = peer }
            if let error { row.error = error }
            if let result { row.result = result }
            if ended, row.endedAt == nil { row.endedAt = Date().timeIntervalSince1970 }
            try row.update(db)
        }
    }

    func hold(vm: String, reason: String) async throws {
        try await timedWrite { db in
            try db.execute(sql: "UPDATE vm SET hold = ?, updatedAt = ? WHERE id = ?", arguments: [reason, Date().timeIntervalSince1970, vm])
        }
    }

    func release(migration id: String, vm: String, to owner: String, epoch: Int64) async throws {
        try await timedWrite { db in
            // Into another domain: the tombstone, in the same transaction (Protocol.md §6.10).
            let row = try StoredVM.fetchOne(db, key: vm)
            if PeerName.isCrossDomain(owner), let row {
                try TombstoneStore.bury(db, vm: row, owner: owner, epoch: epoch)
            }
            // The lease moved with the VM (§9.2 "Leases and handovers"): other hosts keep
            // watching it under its new owner. A spec that does not decode, or a disk not shared: none.
            let leaseDirectory = leases ? row.flatMap { try? $0.decodedSpec() }.flatMap { try? LeaseFiles.directory(for: $0) } : nil
            // The released record carries the evidence for the new owner's epoch (§6.12), so that
            // relays of it can fence too. None into another domain (no statement names such a
            // host), and none when it cannot be signed (logged; the new owner's record has its own).
            var chain: Data? = nil
            if let evidence, !PeerName.isCrossDomain(owner) {
                do {
                    chain = OwnershipEvidenceChain.encode(try evidence.chain(after: row?.evidence, vm: vm, epoch: epoch - 1, to: owner, migration: id))
                } catch {
                    logger.error("cannot sign the handover statement for the released record", metadata: ["vm.id": "\(vm)", "error": "\(error)"])
                }
            }
            _ = try StoredVM.deleteOne(db, key: vm)
            try StoredOwnership(vmId: vm, owner: owner, epoch: epoch, updatedAt: Date().timeIntervalSince1970,
                                leaseDirectory: PeerName.isCrossDomain(owner) ? nil : leaseDirectory, evidence: chain).save(db)
            try db.execute(sql: "UPDATE migration SET phase = ?, endedAt = ? WHERE id = ?",
                           arguments: [SourceMigration.Phase.done.rawValue, Date().timeIntervalSince1970, id])
        }
    }

    func reclaim(vm: String, epoch: Int64) async throws {
        try await timedWrite { db in
            try db.execute(sql: "UPDATE vm SET epoch = ?, hold = NULL, updatedAt = ? WHERE id = ?",
                           arguments: [epoch, Date().timeIntervalSince1970, vm])
        }
    }

    func beginDestination(id: String, spec: VMSpec, source: String, epoch: Int64) async throws {
        try await timedWrite { db in
            try StoredMigration(id: id, vmId: spec.id, vmName: spec.name, role: MigrationRole.destination.rawValue, peer: source,
                                phase: DestinationMigration.Phase.admitted.rawValue, startedAt: Date().timeIntervalSince1970,
                                epoch: epoch).insert(db)
        }
    }

    func commitDestination(id: String, spec: VMSpec, epoch: Int64, source: String, evidence links: [Hostmesh_V1_OwnershipEvidenceLink]) async throws {
        // The commit's evidence is kept only when it hands this VM to this host in this
        // migration (§6.12); otherwise this host's record of the VM fences nothing.
        var kept: Data? = nil
        if evidence != nil, !PeerName.isCrossDomain(source) {
            let verdict = HandoverEvidence.accepted(links, vm: spec.id, epoch: epoch, source: source, migration: id, hostID: hostID,
                                                    trust: evidence?.credentials.trust)
            kept = verdict.kept
            if let refusal = verdict.refusal, links.isEmpty {
                // A source that could not sign logged it at error itself; nothing more to say here.
                logger.notice("the commit carries no handover evidence: this host's ownership record will not fence the source's copy",
                              metadata: ["migration.id": "\(id)", "vm.id": "\(spec.id)", "mesh.reason": "\(refusal)"])
            } else if let refusal = verdict.refusal {
                logger.error("the commit's handover evidence is not kept: this host's ownership record will not fence the source's copy",
                             metadata: ["migration.id": "\(id)", "vm.id": "\(spec.id)", "mesh.reason": "\(refusal)"])
            }
        }
        try await timedWrite { [kept] db in
            var vm = try StoredVM(spec: spec, desiredState: "running", epoch: epoch)
            vm.hold = nil
            vm.evidence = kept
            try vm.insert(db)
            _ = try StoredOwnership.deleteOne(db, key: spec.id)
            try TombstoneStore.lift(db, vm: spec.id) // a VM back from another domain
            try db.execute(sql: "UPDATE migration SET phase = ? WHERE id = ?", arguments: [DestinationMigration.Phase.committed.rawValue, id])
        }
    }

    func discardDestination(id: String, vm: String, epoch: Int64, reason: String) async throws {
        try await timedWrite { db in
            try db.execute(sql: "UPDATE migration SET phase = ?, error = ?, endedAt = ? WHERE id = ?",
                           arguments: [DestinationMigration.Phase.discarded.rawValue, reason, Date().timeIntervalSince1970, id])
            try db.execute(sql: "DELETE FROM vm WHERE id = ? AND epoch = ?", arguments: [vm, epoch])
        }
    }

    func unfinished() async throws -> [JournaledMigration] {
        try await store.database.read { db in
            try StoredMigration.filter(Column("endedAt") == nil).order(Column("startedAt")).fetchAll(db)
        }.map(\.journaled)
    }

    func migration(_ id: String) async throws -> JournaledMigration? {
        try await store.database.read { db in try StoredMigration.fetchOne(db, key: id) }?.journaled
    }

    func newerOwner(of vm: String, above epoch: Int64) async throws -> OwnershipClaim? {
        try await OwnershipLedger(store: store, hostID: hostID, logger: logger).newerOwner(of: vm, above: epoch)
            .map { OwnershipClaim(owner: $0.owner, epoch: $0.epoch) }
    }

    /// Every migration this host took part in, newest first (`hostmesh migrations`).
    func history() async throws -> [MigrationRecord] {
        try await store.database.read { db in
            try StoredMigration.order(Column("startedAt").desc).fetchAll(db)
        }.map(MigrationRecord.init)
    }
}

extension StoredMigration {
    var journaled: JournaledMigration {
        JournaledMigration(id: id, vmID: vmId, vmName: vmName, role: MigrationRole(rawValue: role) ?? .destination, peer: peer,
                           peerAddress: peerAddress, phase: phase, epoch: epoch, error: error, ended: endedAt != nil)
    }
}

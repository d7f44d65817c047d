import ControlAPI
import Foundation
import Hypervisor
import Migration

/// Recovery (Protocol.md §6.5): after a restart, every migration the journal shows as under way
/// is finished or rolled back by the state machines' recovery rules, through the same executors
/// as a live migration, asking the peer where they say so. A handover in doubt is retried until
/// the peer answers or an operator decides.
extension MigrationCoordinator {
    /// Marks the VMs of every unfinished migration as being recovered, so that no control call
    /// or peer message touches them until `recover` has finished or rolled back their migration.
    /// Call before the agent serves anyone. Throws when the journal cannot be read: the agent
    /// must not serve VMs whose migrations it cannot see.
    public func prepareRecovery() async throws -> [JournaledMigration] {
        let rows: [JournaledMigration]
        do { rows = try await journal.unfinished() } catch {
            throw MigrationServiceError.journal("cannot read the unfinished migrations: \(error)")
        }
        await vms.beginRecovering(Set(rows.map(\.vmID)))
        return rows
    }

    /// Runs the recovery rules for every unfinished migration. Call once at start, after the
    /// VM manager has re-adopted running QEMUs.
    public func recover(_ rows: [JournaledMigration]) async {
        for row in rows {
            await configuration.observer.reached(.recovery(row.role))
            switch row.role {
            case .source:
                let settled = await recoverSource(row.id) ?? false
                await vms.endRecovering(row.vmID, inDoubt: !settled)
            case .destination:
                await recoverDestination(row)
                await vms.endRecovering(row.vmID, inDoubt: false)
            }
        }
    }

    /// Asks the destinations of unsettled handovers (in doubt, or committed but not released)
    /// again, every `configuration.inDoubtRetryInterval`, until cancelled.
    public func retryInDoubt() async {
        while (try? await Task.sleep(for: configuration.inDoubtRetryInterval)) != nil { // cancelled: stop
            let rows: [JournaledMigration]
            do { rows = try await journal.unfinished() } catch {
                logger.error("cannot read the migration journal; in-doubt handovers are asked about again later", metadata: ["error": "\(error)"])
                continue
            }
            for row in rows where row.role == .source && [SourceMigration.Phase.inDoubt.rawValue, SourceMigration.Phase.committed.rawValue].contains(row.phase) {
                if await recoverSource(row.id) == true { await vms.settled(row.vmID) }
            }
        }
    }

    /// Feeds `event` (recovery, or an operator's decision) to the source machine of migration
    /// `id`, rebuilt from a fresh read of its row. True once it has ended (the VM is settled here
    /// or gone); false if not; nil if someone else (the retry loop, `vm resolve`) is settling it.
    @discardableResult
    func recoverSource(_ id: String, event: SourceMigration.Event = .recovered) async -> Bool? {
        guard beginSettling(id) else { return nil }
        defer { endSettling(id) }
        let row: JournaledMigration
        do {
            // Read afresh: whoever settled it last may have changed it.
            guard let fresh = try await journal.migration(id) else { return true }
            row = fresh
        } catch {
            logger.error("cannot read the migration journal; the VM stays held", metadata: ["migration.id": "\(id)", "error": "\(error)"])
            return false
        }
        guard !row.ended else { return true }
        guard let phase = SourceMigration.Phase(rawValue: row.phase) else {
            logger.error("unknown phase in the migration journal; the VM stays held", metadata: ["migration.id": "\(id)", "migration.phase": "\(row.phase)"])
            return false
        }
        logger.info("recovering migration", metadata: ["migration.id": "\(row.id)", "migration.role": "source", "migration.phase": "\(phase)"])
        let spec = try? await vms.lookUp(row.vmID).spec // gone after a release: nothing to unfreeze
        let run = SourceRun(context: context, recovering: row, spec: spec)
        // The operator's choice about the source's images is not journaled: recovery keeps them.
        var executor = SourceExecutor(machine: SourceMigration(id: row.id, journaled: phase, disks: SourceRun.diskPolicy(spec, keepSource: true)),
                                      environment: run)
        await executor.handle(event)
        let ended = [.done, .aborted].contains(executor.machine.phase)
        let writeFailed = await run.writeFailed
        return ended && !writeFailed
    }

    func recoverDestination(_ row: JournaledMigration) async {
        guard let phase = DestinationMigration.Phase(rawValue: row.phase) else {
            logger.error("unknown phase in the migration journal", metadata: ["migration.id": "\(row.id)", "migration.phase": "\(row.phase)"])
            return
        }
        let process = await vms.process(row.vmID)
        let alive = if let process { await process.exitIfEnded() == nil } else { false }
        logger.info("recovering migration", metadata: ["migration.id": "\(row.id)", "migration.role": "destination", "migration.phase": "\(phase)"])
        let run = IncomingRun(context: context, recovering: row, process: process)
        var executor = DestinationExecutor(machine: DestinationMigration(id: row.id, journaled: phase, reason: row.error ?? ""), environment: run)
        await executor.handle(.recovered(qemuAlive: alive || phase == .admitted))
    }
}

import ControlAPI
import Foundation
import GRDB
import Hypervisor
import MeshWire
import Migration
import SecureChannel

/// Recovery (Protocol.md §6.5): after a restart, every migration the journal shows as under way
/// is finished or rolled back by the state machines' recovery rules, asking the peer where they
/// say so. A handover in doubt is retried until the peer answers or an operator decides.
extension MigrationCoordinator {
    /// Runs the recovery rules for every unfinished migration. Call once at start, after the
    /// VM manager has re-adopted running QEMUs.
    /// Marks the VMs of every unfinished migration as being recovered, so that no control call
    /// or peer message touches them until `recover` has finished or rolled back their migration.
    /// Called before the agent serves anyone.
    func prepareRecovery() async -> [StoredMigration] {
        let rows: [StoredMigration]
        do { rows = try await journal.unfinished() } catch {
            logger.critical("cannot read the migration journal: unfinished migrations are not recovered", metadata: ["error": "\(error)"])
            return []
        }
        await vms.beginRecovering(Set(rows.map(\.vmId)))
        return rows
    }

    func recover(_ rows: [StoredMigration]) async {
        for row in rows {
            await hooks.reached("recovery:\(row.role)")
            if row.role == "source" {
                await recoverSource(row)
            } else {
                await recoverDestination(row)
            }
            let after = try? await journal.migration(row.id)
            await vms.endRecovering(row.vmId, inDoubt: after?.phase == SourceMigration.Phase.inDoubt.rawValue && after?.endedAt == nil)
        }
    }

    /// Asks the destinations of in-doubt handovers again, every `interval`, until cancelled.
    func retryInDoubt(every interval: Duration = .seconds(5)) async {
        while (try? await Task.sleep(for: interval)) != nil {
            let rows = (try? await journal.unfinished()) ?? []
            for row in rows where row.role == "source" && row.phase == SourceMigration.Phase.inDoubt.rawValue {
                await recoverSource(row)
            }
        }
    }

    func recoverSource(_ stale: StoredMigration) async {
        guard beginSettling(stale.id) else { return } // the retry loop or `vm resolve` is on it
        defer { endSettling(stale.id) }
        // Read afresh: whoever settled it last may have changed it.
        guard let row = try? await journal.migration(stale.id), row.endedAt == nil,
              let phase = SourceMigration.Phase(rawValue: row.phase) else { return }
        var machine = SourceMigration(id: row.id, journaled: phase)
        var queue = machine.handle(.recovered)
        // A destination still `receiving` is told to abort and asked again; a few times here,
        // then the retry loop's next round (it may be finishing a commit that ends either way).
        var queries = 0
        logger.info("recovering migration", metadata: ["migration.id": "\(row.id)", "migration.role": "source", "migration.phase": "\(phase)"])
        while !queue.isEmpty {
            switch queue.removeFirst() {
            case .journal(let p):
                try? await journal.setPhase(row.id, p.rawValue, ended: p == .done || p == .aborted)
            case .sendAbort(let reason):
                _ = try? await ask(row, { $0.migrationAbort.migrationID = row.id; $0.migrationAbort.reason = reason }, expectAnswer: false)
            case .reclaim:
                // Above the epoch the destination would have taken; without it, no resume.
                do { try await journal.reclaim(vm: row.vmId, epoch: (row.epoch ?? 1) + 2) } catch {
                    logger.error("cannot journal taking the VM back; it stays paused", metadata: ["migration.id": "\(row.id)", "error": "\(error)"])
                    return
                }
            case .resumeLocal:
                if let process = await vms.process(row.vmId), let status = try? await process.qmp.queryStatus(), !status.running {
                    try? await process.qmp.cont()
                }
                logger.info("migration rolled back: the guest runs here", metadata: ["migration.id": "\(row.id)", "vm.id": "\(row.vmId)"])
            case .keepPaused:
                try? await journal.hold(vm: row.vmId, reason: "handover of migration \(row.id) to \(row.peer) is in doubt: `hostmesh vm resolve` shows the choices")
            case .queryPeer:
                queries += 1
                guard queries <= 3 else { continue }
                guard let answer = try? await ask(row, { $0.migrationQuery.migrationID = row.id }, expectAnswer: true),
                      case .migrationVerdict(let v)? = answer?.body else {
                    logger.warning("handover in doubt: the destination does not answer", metadata: ["migration.id": "\(row.id)", "mesh.peer": "\(row.peer)"])
                    continue
                }
                queue += machine.handle(.peerReports(Self.verdict(v)))
            case .releaseLocal:
                try? await journal.release(migration: row.id, vm: row.vmId, to: row.peer, epoch: (row.epoch ?? 1) + 1)
                await vms.endOutgoing(row.vmId, released: true)
                queue += machine.handle(.released)
                logger.info("migration completed during recovery: the guest runs on the destination", metadata: ["migration.id": "\(row.id)"])
            case .sendPrepare, .startTransfer, .sendCommit, .succeeded, .failed:
                break
            }
        }
        if let after = try? await journal.migration(row.id), after.endedAt != nil { await vms.settled(row.vmId) }
    }

    func recoverDestination(_ row: StoredMigration) async {
        guard let phase = DestinationMigration.Phase(rawValue: row.phase) else { return }
        let process = await vms.process(row.vmId)
        let alive = await process?.exitIfEnded() == nil && process != nil
        var machine = DestinationMigration(id: row.id, journaled: phase, reason: row.error ?? "")
        logger.info("recovering migration", metadata: ["migration.id": "\(row.id)", "migration.role": "destination", "migration.phase": "\(phase)"])
        for directive in machine.handle(.recovered(qemuAlive: alive || phase == .admitted)) {
            switch directive {
            case .journal(.discarded):
                // No copy here after all: the VM row a commit wrote goes with the phase, so the
                // source, when it asks, takes the guest back.
                guard case .discarded(let reason) = machine.verdict else { break }
                try? await journal.discardDestination(id: row.id, vm: row.vmId, epoch: row.epoch ?? 0, reason: reason)
            case .journal(let p):
                try? await journal.setPhase(row.id, p.rawValue, ended: p == .running)
            case .discard:
                await vms.discardOrphan(row.vmId)
            case .resume:
                if let process, let status = try? await process.qmp.queryStatus(), !status.running { try? await process.qmp.cont() }
                try? await journal.setPhase(row.id, DestinationMigration.Phase.running.rawValue, ended: true)
            default:
                break
            }
        }
    }

    static func verdict(_ v: Hostmesh_V1_MigrationVerdict) -> DestinationMigration.Verdict {
        switch v.verdict {
        case .receiving: return .receiving
        case .committed: return .committed
        case .discarded: return .discarded(v.reason)
        case .unknown, .UNRECOGNIZED: return .unknown
        }
    }

    /// Opens a control channel to the migration's peer, sends one envelope and (optionally)
    /// waits for one answer. Nil answer when none was expected.
    func ask(_ row: StoredMigration, _ build: (inout Hostmesh_V1_AgentEnvelope) -> Void, expectAnswer: Bool) async throws -> Hostmesh_V1_AgentEnvelope?? {
        // Where the peer is now (it may have restarted elsewhere), else where it was.
        let current = row.peer == row.peerAddress ? nil : peerAddresses.withLockedValue { $0[row.peer] }
        guard let address = current ?? row.peerAddress.flatMap({ try? HostPort(parsing: $0) }) else { return nil }
        var control = SecureChannelConfiguration(credentials: credentials, handshakeTimeout: .seconds(3))
        control.policy.purpose = "control"
        control.policy.expectedPeer = row.peer == row.peerAddress ? nil : row.peer
        let connection = try await SecureConnection.connect(host: address.host, port: address.port, configuration: control, logger: logger)
        var envelope = Hostmesh_V1_AgentEnvelope()
        build(&envelope)
        return try await connection.channel.executeThenClose { inbound, outbound in
            try await outbound.write(EnvelopeWriter.frame(envelope))
            guard expectAnswer else { return .some(nil) }
            var reader = EnvelopeReader(inbound)
            return .some(try await reader.next())
        }
    }

    /// `hostmesh vm resolve`: the state of a VM's in-doubt handover and, with an action, a decision.
    func resolve(_ reference: String, action: String?) async throws -> String {
        let vm = try await vms.find(reference)
        let rows = (try await journal.unfinished()).filter { $0.vmId == vm.id && $0.role == "source" }
        guard let row = rows.last, row.phase == SourceMigration.Phase.inDoubt.rawValue || vm.hold != nil else {
            return "\(vm.name) has no handover in doubt (epoch \(vm.epoch))."
        }
        let state = "\(vm.name): handover to \(row.peer) (migration \(row.id)) is in doubt; the guest is paused here at epoch \(vm.epoch)."
        switch action {
        case nil:
            return state + """

              Safe choices:
                hostmesh vm resolve \(vm.name) --retry                    ask \(row.peer) again (also retried every 5 s)
                hostmesh vm resolve \(vm.name) --resume-here --destination-fenced
                    only if \(row.peer) is down and cannot come back with the VM (powered off, its disk wiped)
                hostmesh vm resolve \(vm.name) --release-here --destination-runs-it
                    only if you have seen the guest running on \(row.peer)
            """
        case "retry"?:
            await recoverSource(row)
            let after = try await journal.migration(row.id)
            return "asked \(row.peer): migration is now \(after?.phase ?? "?")"
        case "resume-here"?, "release-here"?:
            guard beginSettling(row.id) else {
                throw ControlError.conflict("\(row.peer) is being asked about migration \(row.id) right now; run this again in a few seconds")
            }
            defer { endSettling(row.id) }
            guard let fresh = try await journal.migration(row.id), fresh.endedAt == nil else {
                return "migration \(row.id) was settled meanwhile: \((try? await journal.migration(row.id))?.phase ?? "?"); nothing done"
            }
            return try await decide(action == "resume-here", vm: vm, row: fresh)
        default:
            throw ControlError.badRequest("unknown action \(action ?? "")")
        }
    }

    /// The operator's decision on an in-doubt handover, with the migration held for settling.
    private func decide(_ resumeHere: Bool, vm: StoredVM, row: StoredMigration) async throws -> String {
        if resumeHere {
            if let newer = try await ownership.newerOwner(of: vm.id, above: vm.epoch) {
                throw ControlError.conflict("\(newer.owner) owns \(vm.name) at epoch \(newer.epoch), above this copy's \(vm.epoch): resuming here would make two copies")
            }
            // Journal first: the epoch that makes this copy the owner, then the guest runs.
            try await journal.reclaim(vm: vm.id, epoch: (row.epoch ?? vm.epoch) + 2)
            try await journal.setPhase(row.id, SourceMigration.Phase.aborted.rawValue, error: "operator resumed the guest on the source", ended: true)
            await vms.settled(vm.id)
            if let process = await vms.process(vm.id), let status = try? await process.qmp.queryStatus(), !status.running { try await process.qmp.cont() }
            return "\(vm.name) resumed here at epoch \((row.epoch ?? vm.epoch) + 2)"
        }
        try await journal.release(migration: row.id, vm: vm.id, to: row.peer, epoch: (row.epoch ?? vm.epoch) + 1)
        await vms.endOutgoing(vm.id, released: true)
        await vms.settled(vm.id)
        return "\(vm.name) released to \(row.peer)"
    }
}

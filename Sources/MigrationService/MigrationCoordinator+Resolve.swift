import ControlAPI
import Migration

extension MigrationCoordinator {
    /// `hostmesh vm resolve`: the state of a VM's in-doubt handover and, with a decision, the
    /// decision carried out through the source machine (`operatorResumed`, `operatorReleased`).
    public func resolve(_ reference: String, decision: ResolveDecision) async throws -> String {
        // The confirmations first, whatever the VM's state: a bare request is never acted on.
        switch decision {
        case .resumeHere(destinationFenced: false):
            throw ControlError.badRequest("resuming \(reference) here could make a second running copy: confirm that the destination is down and cannot come back with it (destinationFenced: true, `--destination-fenced`)")
        case .releaseHere(destinationRunsIt: false):
            throw ControlError.badRequest("releasing \(reference) here could lose it: confirm that you have seen it running on the destination (destinationRunsIt: true, `--destination-runs-it`)")
        default:
            break
        }
        let vm = try await vms.lookUp(reference)
        let rows = try await journal.unfinished().filter { $0.vmID == vm.id && $0.role == .source }
        guard let row = rows.last, row.phase == SourceMigration.Phase.inDoubt.rawValue || vm.hold != nil else {
            return "\(vm.name) has no handover in doubt (epoch \(vm.epoch))."
        }
        let state = "\(vm.name): handover to \(row.peer) (migration \(row.id)) is in doubt; the guest is paused here at epoch \(vm.epoch)."
        switch decision {
        case .show:
            return state + """

              Safe choices:
                hostmesh vm resolve \(vm.name) --retry                    ask \(row.peer) again (also retried every 5 s)
                hostmesh vm resolve \(vm.name) --resume-here --destination-fenced
                    only if \(row.peer) is down and cannot come back with the VM (powered off, its disk wiped)
                hostmesh vm resolve \(vm.name) --release-here --destination-runs-it
                    only if you have seen the guest running on \(row.peer)
            """
        case .retry:
            if await recoverSource(row.id) == true { await vms.settled(vm.id) }
            let after = try await journal.migration(row.id)
            return "asked \(row.peer): migration is now \(after?.phase ?? "?")"
        case .resumeHere(destinationFenced: false), .releaseHere(destinationRunsIt: false):
            return state // refused above
        case .resumeHere(destinationFenced: true):
            // Fail closed: a newer owner that cannot be ruled out refuses (the read throws).
            if let newer = try await journal.newerOwner(of: vm.id, above: vm.epoch) {
                throw ControlError.conflict("\(newer.owner) owns \(vm.name) at epoch \(newer.epoch), above this copy's \(vm.epoch): resuming here would make two copies")
            }
            return try await decide(.operatorResumed, vm: vm, row: row)
        case .releaseHere(destinationRunsIt: true):
            return try await decide(.operatorReleased, vm: vm, row: row)
        }
    }

    /// Feeds the operator's decision to the migration's machine, read afresh and held for settling.
    private func decide(_ event: SourceMigration.Event, vm: RegisteredVM, row: JournaledMigration) async throws -> String {
        guard let fresh = try await journal.migration(row.id), !fresh.ended else {
            return "migration \(row.id) was settled meanwhile; nothing done"
        }
        guard fresh.phase == SourceMigration.Phase.inDoubt.rawValue else {
            return "migration \(row.id) is \(fresh.phase), not in doubt; nothing done (`hostmesh vm resolve \(vm.name) --retry` asks again)"
        }
        guard let settled = await recoverSource(row.id, event: event) else {
            throw ControlError.conflict("\(row.peer) is being asked about migration \(row.id) right now; run this again in a few seconds")
        }
        if settled { await vms.settled(vm.id) }
        switch try await journal.migration(row.id)?.phase {
        case SourceMigration.Phase.aborted.rawValue?:
            return "\(vm.name) resumed here at epoch \((row.epoch ?? vm.epoch) + 2)"
        case SourceMigration.Phase.done.rawValue?, nil:
            return "\(vm.name) released to \(row.peer)"
        case let other?:
            return "\(vm.name): the decision could not be carried out (migration is \(other)); see the agent's log"
        }
    }
}

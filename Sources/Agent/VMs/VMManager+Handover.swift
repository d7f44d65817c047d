import ControlAPI
import Foundation
import GRDB
import Hypervisor

/// Handing a defined, stopped VM to another host so that it starts there (`vm start --place
/// auto`, Protocol.md §10.10). The owner journals each offer in the VM's row (`hold`) before
/// sending it, so the VM never runs in two places: while an offer is out the row is held (no
/// start, no migration here), an accepted offer deletes the row and records the new owner at the
/// offered epoch, and a refused one takes the VM back above every epoch offered.
extension VMManager {
    /// Marks VM `reference` as being handed over and returns its row: it must be defined here,
    /// stopped, and neither held nor busy.
    func beginHandover(_ reference: String) async throws -> StoredVM {
        let vm = try await find(reference)
        if let hold = vm.hold { throw ControlError.conflict("\(vm.name) is held: \(hold). `hostmesh vm resolve \(vm.name)` shows the choices") }
        try mark(vm.id, .handingOver, name: vm.name)
        if let process = processes[vm.id], await process.exitIfEnded() == nil {
            busy[vm.id] = nil
            throw ControlError.conflict("\(vm.name) already runs, on the host that defines it: `hostmesh migrate \(vm.name) --auto` there moves a running VM")
        }
        // Read again under the mark: a fence may have come while the process was checked.
        let current = try await find(vm.id)
        if let hold = current.hold {
            busy[vm.id] = nil
            throw ControlError.conflict("\(vm.name) is held: \(hold)")
        }
        return current
    }

    /// Journals the offer of VM `id` to `host` at `epoch`, before it is sent: from now on this
    /// copy is held, and stays held if the answer never comes (the offer is then in doubt).
    func journalOffer(_ id: String, to host: String, epoch: Int64) async throws {
        let hold = Self.offerHold(to: host, epoch: epoch)
        try await store.database.write { db in
            try db.execute(sql: "UPDATE vm SET hold = ?, updatedAt = ? WHERE id = ? AND hold IS NULL",
                           arguments: [hold, Date().timeIntervalSince1970, id])
            guard db.changesCount == 1 else { throw ControlError.conflict("VM \(id) changed while it was being handed over") }
        }
    }

    /// The hold an offer of a VM to `host` at `epoch` leaves on its row.
    static func offerHold(to host: String, epoch: Int64) -> String {
        "handed over to \(host) at epoch \(epoch) (`vm start --place auto`) and no answer came: "
            + "`hostmesh vm resolve` asks \(host) what became of it"
    }

    /// The offer to `host` at `epoch` was refused (nothing of the VM was kept there): the copy
    /// here is free again, unless another hold (a fence that came meanwhile) replaced the
    /// offer's: that one stays, and this throws.
    func releaseOffer(_ id: String, to host: String, epoch: Int64) async throws {
        try await store.database.write { db in
            try db.execute(sql: "UPDATE vm SET hold = NULL, updatedAt = ? WHERE id = ? AND hold = ?",
                           arguments: [Date().timeIntervalSince1970, id, Self.offerHold(to: host, epoch: epoch)])
            guard db.changesCount == 1 else { throw ControlError.conflict("VM \(id) was held by something else while it was offered: \(Self.holdText(db, id))") }
        }
    }

    /// The row's hold now, for messages.
    private static func holdText(_ db: Database, _ id: String) -> String {
        ((try? StoredVM.fetchOne(db, key: id))??.hold) ?? "no hold" // unreadable: the message says less, nothing else depends on it
    }

    /// `host` accepted VM `id` at `epoch`: the row goes (one transaction with the ownership record
    /// that names the new owner, so this host vouches for `host` from now on), then its runtime
    /// directory (a stopped VM's console log and sockets).
    /// `recording` false: the row goes without a record (the VM went on from `host` to an owner
    /// this host does not know; that owner's record comes by gossip).
    func completeHandover(_ id: String, to host: String, epoch: Int64, recording: Bool = true) async throws {
        defer { if busy[id] == .handingOver { busy[id] = nil } }
        try await store.database.write { db in
            try db.execute(sql: "DELETE FROM vm WHERE id = ?", arguments: [id])
            if recording { try StoredOwnership(vmId: id, owner: host, epoch: epoch, updatedAt: Date().timeIntervalSince1970).save(db) }
        }
        problems[id] = nil
        // Best effort: no QEMU runs from it; a directory left behind is discarded as an orphan at the next recovery.
        try? FileManager.default.removeItem(atPath: directory(for: id).path)
        logger.notice("VM handed over for a placed start", metadata: ["vm.id": "\(id)", "vm.owner": "\(host)", "vm.epoch": "\(epoch)"])
    }

    /// Every offer was refused: the VM is this host's again, at `epoch` (above every epoch
    /// offered, so an offer that somehow took effect is fenced by this host's record).
    /// Only the hold of an offer (`offeredTo` at any epoch) is cleared: a fence that replaced it
    /// stays (the VM is another host's), and this throws.
    func takeBack(_ id: String, epoch: Int64) async throws {
        try await store.database.write { db in
            guard let row = try StoredVM.fetchOne(db, key: id), row.epoch < epoch, row.hold.map({ Self.offer(inHold: $0) != nil }) ?? true else {
                throw ControlError.conflict("VM \(id) cannot be taken back: \(Self.holdText(db, id))")
            }
            try db.execute(sql: "UPDATE vm SET hold = NULL, epoch = ?, updatedAt = ? WHERE id = ?",
                           arguments: [epoch, Date().timeIntervalSince1970, id])
        }
    }

    /// The handover of VM `id` ended (taken back, or in doubt: the row's hold then says so).
    func endHandover(_ id: String) {
        if busy[id] == .handingOver { busy[id] = nil }
    }

    /// Receives VM `spec`, handed over by `owner` at `epoch`, and starts it: the row at `epoch`
    /// first, then the start. A start that fails leaves nothing here (the row goes again), so the
    /// refusal is definite and the owner may offer the VM elsewhere.
    ///
    /// - Throws: `ControlError.conflict` when this host is in maintenance, has the VM or its name,
    ///   or knows a record of the VM at `epoch` or above; the start's errors otherwise.
    func receiveHandover(_ spec: VMSpec, epoch: Int64, from owner: String, stored: @Sendable () async -> Void = {}) async throws -> VMInfo {
        try refuseInMaintenance("starting \(spec.name)")
        do {
            try spec.validate()
            try await network?.validate(spec)
        } catch { throw ControlError.badRequest("\(error)") }
        try await checkResources(spec)
        try mark(spec.id, .starting, name: spec.name)
        let spec = AgentNetwork.localize(spec, directory: directory(for: spec.id))
        let record = try StoredVM(spec: spec, desiredState: "stopped", epoch: epoch)
        do {
            try await store.database.write { db in
                if try StoredVM.filter(Column("name") == spec.name).fetchCount(db) > 0 {
                    throw ControlError.conflict("a VM named \(spec.name) already exists on the chosen host")
                }
                if try StoredVM.exists(db, key: spec.id) { throw ControlError.conflict("VM id \(spec.id) already exists on the chosen host") }
                if let known = try StoredOwnership.fetchOne(db, key: spec.id) {
                    if known.epoch >= epoch {
                        throw ControlError.conflict("\(known.owner) holds \(spec.name) at epoch \(known.epoch), not below the \(epoch) offered")
                    }
                    // Only the VM's owner hands it over: a member that does not own it must not
                    // make this host start a second copy (a stale record here refuses a real
                    // owner's offer, which then goes to the next host: fail closed).
                    guard known.owner == owner else {
                        throw ControlError.conflict("\(owner) offered \(spec.name), but this host knows \(known.owner) as its owner (epoch \(known.epoch))")
                    }
                }
                if let conflict = try TombstoneStore.conflict(db, with: spec) { throw ControlError.conflict(conflict) }
                try record.insert(db)
            }
        } catch {
            busy[spec.id] = nil
            throw error
        }
        // The mark stays until the start ended either way: a handover query meanwhile is told to
        // ask again, never TAKEN for a row a failed start is about to delete.
        defer { busy[spec.id] = nil }
        logger.notice("VM handed over here for a placed start: journaled", metadata: ["vm.id": "\(spec.id)", "vm.epoch": "\(epoch)", "vm.owner": "\(owner)"])
        await stored()
        do {
            try refuseInMaintenance("starting \(spec.name)")
            return try await startMarked(try await find(spec.id))
        } catch {
            // A QEMU that started (fenced meanwhile) keeps the row: the VM is this host's, paused.
            if let process = processes[spec.id], await process.exitIfEnded() == nil { return try await info(spec.id) }
            await network?.detach(spec)
            releaseControlGroups(spec)
            try await forgetUnstarted(spec.id, epoch: epoch)
            throw error
        }
    }

    /// Deletes the row of a VM received by handover whose start failed (no QEMU runs from it).
    private func forgetUnstarted(_ id: String, epoch: Int64) async throws {
        processes[id] = nil
        try await store.database.write { db in
            try db.execute(sql: "DELETE FROM vm WHERE id = ? AND epoch = ?", arguments: [id, epoch])
        }
        // Best effort: its QEMU never ran; a directory left behind is discarded as an orphan at the next recovery.
        try? FileManager.default.removeItem(atPath: directory(for: id).path)
    }

    // MARK: - Resolving a handover that got no answer (Protocol.md §10.12)

    /// The host and epoch of the offer journaled in `hold` by `journalOffer`; nil for any other hold.
    static func offer(inHold hold: String) -> (host: String, epoch: Int64)? {
        let prefix = "handed over to "
        guard hold.hasPrefix(prefix) else { return nil }
        let words = hold.dropFirst(prefix.count).split(separator: " ", maxSplits: 4)
        guard words.count >= 4, words[1] == "at", words[2] == "epoch", let epoch = Int64(words[3]) else { return nil }
        return (String(words[0]), epoch)
    }

    /// The receiving host's answer to `owner` asking what became of its offer of VM `id` at
    /// `epoch`, decided in one transaction (so a late offer cannot slip in between): the epoch
    /// this host knows the VM at when the offer took effect (its row here at `epoch` or above, or
    /// a record of another owner since); otherwise nil, after recording `owner` as the VM's owner
    /// at `epoch`, so that the offer, should it still arrive, is refused (§10.10: a known record
    /// at the epoch offered or above).
    func answerHandoverQuery(_ id: String, epoch: Int64, from owner: String) async throws -> Int64? {
        // Excludes a handover being received (its start may still fail and delete the row):
        // the asker is told to ask again (§10.12).
        if let operation = busy[id] { throw ControlError.unavailable("VM \(id) is \(operation.rawValue) here: ask again shortly") }
        busy[id] = .resolving
        defer { busy[id] = nil }
        return try await store.database.write { db in
            if let row = try StoredVM.fetchOne(db, key: id), row.epoch >= epoch { return row.epoch }
            if let known = try StoredOwnership.fetchOne(db, key: id) {
                if known.epoch >= epoch { return known.owner == owner ? nil : known.epoch }
                // Only the owner this host knows may fence its offer: another member cannot
                // record itself as the VM's owner here by asking (a stale record here makes the
                // real owner's query fail until the newer record arrives: fail closed).
                guard known.owner == owner else {
                    throw ControlError.conflict("\(owner) asked about VM \(id) at epoch \(epoch), but this host knows \(known.owner) as its owner "
                        + "(epoch \(known.epoch)): only that host can resolve its handover")
                }
            }
            try StoredOwnership(vmId: id, owner: owner, epoch: epoch, updatedAt: Date().timeIntervalSince1970).save(db)
            return nil
        }
    }

    /// Drops the row of VM `id`, held here, when another host owns it at a higher epoch (its
    /// record arrived) and no QEMU of it runs here. Returns that record, or nil (nothing done).
    func dropStale(_ id: String, hostID: String) async throws -> StoredOwnership? {
        guard busy[id] == nil, processes[id] == nil else { return nil }
        let newer: StoredOwnership? = try await store.database.write { db in
            guard let row = try StoredVM.fetchOne(db, key: id), row.hold != nil,
                  let known = try StoredOwnership.fetchOne(db, key: id), known.epoch > row.epoch, known.owner != hostID else { return nil }
            try db.execute(sql: "DELETE FROM vm WHERE id = ? AND epoch = ?", arguments: [id, row.epoch])
            return known
        }
        guard let newer else { return nil }
        problems[id] = nil
        // Best effort: no QEMU runs from it; a directory left behind is discarded as an orphan at the next recovery.
        try? FileManager.default.removeItem(atPath: directory(for: id).path)
        logger.notice("stale VM row dropped: another host owns the VM", metadata: ["vm.id": "\(id)", "vm.owner": "\(newer.owner)", "vm.epoch": "\(newer.epoch)"])
        return newer
    }

    /// The record of another host owning VM `id` above `epoch`, if this host knows one.
    func newerOwner(of id: String, above epoch: Int64, hostID: String) async throws -> StoredOwnership? {
        try await store.database.read { db in
            guard let known = try StoredOwnership.fetchOne(db, key: id), known.epoch > epoch, known.owner != hostID else { return nil }
            return known
        }
    }
}

import Foundation
import GRDB
import HA
import Hypervisor
import Logging
import Membership
import MeshTime
import Placement

/// The taker's side of restart elsewhere (Protocol.md §9.2, "Taker"): for every VM another host
/// owns under a lease (its ownership record names the lease directory), one `LeaseTakeoverCore`,
/// fed every round with a read of the VM's lease files and with placement's verdict; its
/// directives carried out: the claim (an exclusive create on the shared storage) and the
/// takeover (journal, lease, start; the ownership sync then gossips the record). It makes no
/// decision of its own.
actor TakeoverSupervisor {
    private let store: AgentStore
    private let vms: VMManager
    private let membership: AgentMembership
    private let hostID: String
    private let domain: String
    private let settings: LeaseSettings
    private let logger: Logger
    private let origin = ContinuousClock.now

    /// One watched VM: the record it is watched for (a new owner or epoch starts afresh), its
    /// core, and what was last logged about it (so a refusal is logged once, not every round).
    private struct Watch {
        var owner: String
        var epoch: Int64
        var core: LeaseTakeoverCore
        var spec: VMSpecFile?
        var lastProblem: String?
    }
    private var watched: [String: Watch] = [:]

    init(store: AgentStore, vms: VMManager, membership: AgentMembership, hostID: String, domain: String, settings: LeaseSettings,
         logger: Logger) {
        self.store = store
        self.vms = vms
        self.membership = membership
        self.hostID = hostID
        self.domain = domain
        self.settings = settings
        self.logger = logger
    }

    private var now: MeshInstant { MeshInstant(sinceOrigin: ContinuousClock.now - origin) }

    /// A VM another host owns under a lease, as this host's ownership table says.
    struct Candidate: Sendable {
        var vm: String
        var owner: String
        var epoch: Int64
        var leaseDirectory: String
    }

    /// The VMs to watch: owned by another host under a lease, at an epoch above any row of this
    /// host for the same VM (a row at that epoch or above: this host owns it now).
    func candidates() async throws -> [Candidate] {
        try await store.database.read { [hostID] db in
            let mine = Dictionary(try StoredVM.fetchAll(db).map { ($0.id, $0.epoch) }, uniquingKeysWith: max)
            return try StoredOwnership.fetchAll(db).compactMap { row in
                guard row.owner != hostID, VMSpec.isValidID(row.vmId), let directory = row.leaseDirectory, !directory.isEmpty,
                      (mine[row.vmId] ?? 0) < row.epoch else { return nil }
                return Candidate(vm: row.vmId, owner: row.owner, epoch: row.epoch, leaseDirectory: directory)
            }.sorted { $0.vm < $1.vm }
        }
    }

    /// One round (every read period, 500 ms).
    func tick() async {
        let candidates: [Candidate]
        do { candidates = try await self.candidates() } catch {
            // Nothing is claimed this round; the next round reads again.
            logger.error("cannot look for VMs to take over: the ownership table does not read", metadata: ["error": "\(error)"])
            return
        }
        watched = watched.filter { id, _ in candidates.contains { $0.vm == id } }
        guard !candidates.isEmpty else { return }
        let hosts = await membership.service.members().map { DRSViewBuilder.host($0.member, domain: domain, maintenance: []) }
        for candidate in candidates { await round(candidate, hosts: hosts) }
    }

    private func round(_ candidate: Candidate, hosts: [PlacementHost]) async {
        let id = candidate.vm
        if let watch = watched[id], watch.owner != candidate.owner || watch.epoch != candidate.epoch { watched[id] = nil }
        var watch = watched[id] ?? Watch(owner: candidate.owner, epoch: candidate.epoch, core: LeaseTakeoverCore(settings: settings))
        defer { watched[id] = watch }
        if case .won = watch.core.state { return } // carried out (or failed and logged) already
        // A lost claim goes on being watched: the winner's lease or record normally ends it; a
        // winner that never wrote its lease is claimed over (LeaseTakeoverCore, abandoned claim).
        let files = LeaseFiles(directory: candidate.leaseDirectory)
        // The spec says what to start and how much room it needs; without it, no host is chosen.
        do {
            let spec = try files.readSpec(vm: id)
            guard (spec.spec.restart ?? .no) == .onFailure else {
                throw TakeoverRefusal("its restart policy is not on-failure (\(files.specPath(id)))")
            }
            try Self.checkLeaseDirectory(spec.spec, watched: files, vm: id)
            watch.spec = spec
        } catch {
            watch.spec = nil
            note(&watch, id, "VM not watched for takeover: \(error)")
        }
        let chosen = watch.spec.map {
            RestartPlacement.choose(vm: id, memoryMiB: $0.spec.memoryMiB, owner: candidate.owner, hosts: hosts) == hostID
        } ?? false
        var pending = watch.core.handle(.chosen(chosen))
        var snapshot: [LeaseTakeoverCore.Snapshot]?
        var claim: Int64?
        do {
            let leases = try files.leases(vm: id)
            claim = try files.highestClaim(vm: id)?.epoch
            snapshot = leases.map {
                .init(owner: $0.owner, epoch: $0.epoch, counter: $0.counter, released: !$0.held, incoming: $0.incoming)
            }
        } catch {
            snapshot = nil // nothing is proven by a lease that does not read: the wait starts again
            note(&watch, id, "lease files refused: \(error)")
        }
        pending += watch.core.handle(.read(snapshot, claim: claim, now: now))
        while !pending.isEmpty {
            switch pending.removeFirst() {
            case let .claim(epoch):
                do {
                    // A claim file this host created earlier (a write that failed after the create) is still its own.
                    let won = try files.claim(vm: id, epoch: epoch, host: hostID) || files.claimant(vm: id, epoch: epoch) == hostID
                    logger.notice(won ? "claimed a VM whose lease expired" : "another host claimed the VM first",
                                  metadata: ["vm.id": "\(id)", "vm.owner": "\(candidate.owner)", "vm.epoch": "\(epoch)"])
                    pending += watch.core.handle(.claimed(epoch: epoch, won: won))
                } catch {
                    logger.error("cannot claim a VM whose lease expired: watching again", metadata: ["vm.id": "\(id)", "error": "\(error)"])
                    watch.core = LeaseTakeoverCore(settings: settings)
                }
            case let .takeOver(epoch):
                await takeOver(id, epoch: epoch, from: candidate.owner, files: files)
            }
        }
    }

    /// Carries out a won claim: the spec read again (the one the decision saw may be a round
    /// old), then `VMManager.takeOver` journals and starts it.
    private func takeOver(_ id: String, epoch: Int64, from owner: String, files: LeaseFiles) async {
        do {
            let file = try files.readSpec(vm: id)
            try Self.checkLeaseDirectory(file.spec, watched: files, vm: id)
            try await vms.takeOver(file.spec, epoch: epoch, from: owner)
            logger.notice("took over a VM whose owner's lease expired", metadata: [
                "vm.id": "\(id)", "vm.name": "\(file.spec.name)", "vm.owner": "\(owner)", "vm.epoch": "\(epoch)"])
        } catch {
            logger.error("won the claim of a VM but cannot start it: it stays down", metadata: [
                "vm.id": "\(id)", "vm.owner": "\(owner)", "vm.epoch": "\(epoch)", "error": "\(error)"])
            // The claim is this host's: no other host takes this epoch. Say why where `vm list` shows it.
            await vms.noteTakeoverFailure(id, epoch: epoch, reason: "\(error)")
        }
    }

    /// Refuses `spec` (read from `files`, the lease directory the ownership record names) unless
    /// its disks' lease directory is that same one (Protocol.md §9.2): the expiry was observed
    /// there, so a spec whose disks lie elsewhere (whose copy may hold a live lease there) must
    /// not start.
    static func checkLeaseDirectory(_ spec: VMSpec, watched files: LeaseFiles, vm: String) throws {
        let directory: String
        do { directory = try LeaseFiles.directory(for: spec) } catch {
            throw TakeoverRefusal("its spec (\(files.specPath(vm))) cannot be restarted elsewhere: \(error)")
        }
        guard directory == files.directory else {
            throw TakeoverRefusal("its spec (\(files.specPath(vm))) has its disks' leases in \(directory), not in \(files.directory) where the owner's lease was watched: fix the spec file or the ownership record's lease directory")
        }
    }

    private func note(_ watch: inout Watch, _ id: String, _ problem: String) {
        guard watch.lastProblem != problem else { return }
        watch.lastProblem = problem
        logger.warning("\(problem)", metadata: ["vm.id": "\(id)"])
    }
}

/// Why a VM is not taken over though its files read.
struct TakeoverRefusal: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

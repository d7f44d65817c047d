import ControlAPI
import Foundation
import HostHealth
import Hypervisor
import Logging
import Membership
import MeshWire
import MigrationService
import Placement
import Schedules
import ShellSupport

/// The agent's DRS (Protocol.md §10): the replicated records (rules, settings, maintenance), the
/// hosts' VM load reports, and each round's decision. Decisions come from the pure `DRSRound`;
/// this actor gathers its input, keeps what is replicated durable before applying it, and
/// carries out the moves of this host's VMs.
actor DRSController {
    let hostID: String
    let domain: String
    let configuration: DRSConfiguration
    private let store: DRSRecordStore
    private let membership: AgentMembership
    private let vms: VMManager
    private let journal: MigrationJournal
    private let coordinator: MigrationCoordinator
    private let logger: Logger

    private var records = ReplicatedRecords<DRSRecordBody>()
    /// Local record writes, one at a time (`write`, `update`).
    private var writes = TurnQueue()
    /// Latest load report per host (this host's own included), by (instance, sequence).
    private var loads: [String: Hostmesh_V1_DrsHostLoad] = [:]
    private var samples: [String: VMDemandSampler.Sample] = [:]
    /// Whether a migration involved this host at the previous measurement: an interval that
    /// overlaps one measures the migration's contention, not the VMs' demand (§10.2).
    private var migratingAtLastMeasure = false
    private var migrationsBegunAtLastMeasure = 0
    private var sequence: UInt64 = 0
    private let instance: [UInt8] = (0..<8).map { _ in UInt8.random(in: 0...255) }
    /// VMs this agent is moving for DRS now (claimed before the migration's first await).
    private var moving: Set<String> = []
    private(set) var movesStarted = 0
    private var lastRound: Double?
    /// Moves shown as recommendations, by id, so `drs apply` finds one after the plan moved on.
    private var shown: [String: PlacementMove] = [:]
    /// The maintenance state this host last applied to itself (nil: not yet).
    private var appliedMaintenance: Bool?

    /// `records`: what the store held at start (`DRSRecordStore.load`).
    /// Where DRS moves and placements are published for `hostmesh events` (nil: nowhere).
    let events: AgentEventHub?
    /// Sees a placed start's handover points (fault-injection tests only; production: none).
    let observer: any MigrationObserver

    init(hostID: String, domain: String, configuration: DRSConfiguration, store: DRSRecordStore, records: [DRSRecord], membership: AgentMembership,
         vms: VMManager, journal: MigrationJournal, coordinator: MigrationCoordinator, events: AgentEventHub? = nil,
         observer: any MigrationObserver = NoMigrationObserver(), logger: Logger) {
        self.events = events
        self.observer = observer
        self.hostID = hostID
        self.domain = domain
        self.configuration = configuration
        self.store = store
        self.records = ReplicatedRecords(records)
        self.membership = membership
        self.vms = vms
        self.journal = journal
        self.coordinator = coordinator
        self.logger = logger
    }

    // MARK: - Replicated records

    var settings: DRSSettings {
        if case .settings(let s)? = records.live[DRSRecordBody.settingsKey] { return s }
        return DRSSettings()
    }

    var rules: [PlacementRule] {
        records.live.values.compactMap { if case .rule(let r) = $0 { r } else { nil } }.sorted { $0.name < $1.name }
    }

    /// The live resource pools (Protocol.md §10.9), by name.
    var pools: [ResourcePool] {
        records.live.values.compactMap { if case .pool(let p) = $0 { p } else { nil } }.sorted { $0.name < $1.name }
    }

    /// The pools' CPU allocations as this host's VMs enforce them.
    private var poolCPU: [String: VMSpec.Allocation] {
        Dictionary(uniqueKeysWithValues: pools.map { ($0.name, VMSpec.Allocation(reservation: $0.cpu.reservation, limit: $0.cpu.limit, shares: $0.cpu.shares)) })
    }

    /// Refuses a new VM whose resources do not make sense in the mesh now: an unknown pool, a
    /// reservation larger than any host or beyond its pool's limit (Protocol.md §10.9).
    func checkNewVM(_ spec: VMSpec) async throws {
        guard let resources = spec.resources else { return }
        if let automation = resources.automation, DRSSettings.Automation(rawValue: automation) == nil {
            throw ControlError.badRequest("DRS automation \"\(automation)\" is not one of manual, partial, full")
        }
        if let threshold = resources.threshold, !(1...5).contains(threshold) {
            throw ControlError.badRequest("migration threshold \(threshold) is out of range: give 1 (mandatory moves only) to 5 (any improvement)")
        }
        let (_, view) = await decide()
        do {
            try ResourceAdmission.check(vm: spec.name, memoryMiB: spec.memoryMiB, pool: resources.pool, cpu: Self.allocation(resources.cpu),
                                        memory: Self.allocation(resources.memory), in: view)
        } catch { throw ControlError.badRequest(error.description) }
    }

    static func allocation(_ a: VMSpec.Allocation) -> ResourceAllocation {
        ResourceAllocation(reservation: a.reservation, limit: a.limit, shares: a.shares)
    }

    func maintenance(of host: String) -> MaintenanceRequest? {
        if case .maintenance(let m)? = records.live[DRSRecordBody.maintenanceKey(host)] { return m }
        return nil
    }

    var hostsInMaintenance: Set<String> {
        Set(records.live.compactMap { key, body in
            if case .maintenance(let m) = body, m.active { String(key.dropFirst("maintenance/".count)) } else { nil }
        })
    }

    /// Writes a record as this host: durable first, then applied; spread at the next sync.
    /// One local write at a time (`writes`), so two writes of one key never take one version.
    func write(_ key: String, _ body: DRSRecordBody?) async throws {
        try await writes.enqueue { try await self.writeNow(key, always: true) { _ in body } }.value
    }

    /// Writes under `key` what `change` makes of the record's current body (nil: none or
    /// deleted), computed in the write's turn, so that a record built from what this host
    /// holds (a schedule's outcomes) never drops what another write added meanwhile. Nothing
    /// is written when it returns the current body.
    func update(_ key: String, _ change: @escaping @Sendable (DRSRecordBody?) -> DRSRecordBody?) async throws {
        try await writes.enqueue { try await self.writeNow(key, always: false, change) }.value
    }

    private func writeNow(_ key: String, always: Bool, _ change: (DRSRecordBody?) -> DRSRecordBody?) async throws {
        let current = records.records[key]
        let body = change(current?.body)
        guard always || body != current?.body else { return }
        var next = records
        let record = next.write(key, body, writer: hostID)
        try await store.save([record])
        // Merged, not assigned: records merged from peers during the save stay (and one of
        // theirs that supersedes this write wins, as everywhere else).
        _ = records.merge(record)
        recordsChanged = true
        await applyLocalMaintenance()
    }

    func recordRows() -> [DRSRecord] { records.all }

    /// The operator's health mark of `host` (Protocol.md §11.1), nil when none or withdrawn.
    func healthMark(of host: String) -> HealthMark? {
        if case .health(let m)? = records.live[DRSRecordBody.healthKey(host)], m.state != .healthy { return m }
        return nil
    }

    /// The mesh's health policy (Protocol.md §11.3); evacuate-when-failing until one is set.
    var healthPolicy: HealthPolicy {
        if case .healthPolicy(let p)? = records.live[DRSRecordBody.healthPolicyKey] { return p }
        return .evacuateWhenFailing
    }

    /// The live schedules and their run records (Protocol.md §12).
    var schedules: [Schedule] {
        records.live.values.compactMap { if case .schedule(let s) = $0 { s } else { nil } }.sorted { $0.id < $1.id }
    }

    var scheduleRuns: [String: ScheduleRuns] {
        Dictionary(records.live.compactMap { key, body in
            if case .scheduleRuns(let r) = body { (String(key.dropFirst("schedule-runs/".count)), r) } else { nil }
        }, uniquingKeysWith: { a, _ in a })
    }

    /// This host's health as `Agent/Health` last assessed it: a host its policy evacuates runs
    /// its DRS rounds at every sync, as one in maintenance.
    private var localHealth: HealthState = .healthy
    func setLocalHealth(_ state: HealthState) { localHealth = state }

    /// Clock offsets of peers' load reports: receive time minus their send time, milliseconds.
    private var clockOffsets: [String: Double] = [:]
    var peerClockOffsets: [Double] { Array(clockOffsets.values) }

    // MARK: - Anti-entropy

    /// Records changed (written here or merged) since the last send.
    private var recordsChanged = true
    /// The load last sent, and syncs since the last send.
    private var lastSentLoad: Hostmesh_V1_DrsHostLoad?
    private var quietSyncs = 0
    /// Sends at least this often (in syncs), changed or not: a peer that restarted or joined
    /// learns the records and this host's loads within it.
    static let keepaliveSyncs = 10

    /// What this agent sends this sync, or nil when nothing changed enough to be worth a round
    /// of channels (Protocol.md §10.2): all records, and its own VMs' loads (measured now).
    func syncUpdate() async -> Hostmesh_V1_AgentEnvelope? {
        await applyLocalMaintenance()
        let load = await measure()
        quietSyncs += 1
        guard recordsChanged || quietSyncs >= Self.keepaliveSyncs || lastSentLoad.map({ Self.differs(load, $0) }) ?? true else { return nil }
        recordsChanged = false
        quietSyncs = 0
        lastSentLoad = load
        var update = Hostmesh_V1_DrsUpdate()
        update.records = records.all.map(DRSRecordCoding.wire)
        update.load = load
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.drsUpdate = update
        return envelope
    }

    /// Whether a load report differs enough from the last one sent: another set of VMs, a VM
    /// busy, paused or held differently, or a VM's demand changed by more than 100 thousandths of a
    /// core and 20%.
    static func differs(_ new: Hostmesh_V1_DrsHostLoad, _ old: Hostmesh_V1_DrsHostLoad) -> Bool {
        guard new.vms.count == old.vms.count else { return true }
        let before = Dictionary(old.vms.map { ($0.vmID, $0) }, uniquingKeysWith: { a, _ in a })
        for vm in new.vms {
            guard let was = before[vm.vmID], was.busy == vm.busy, was.paused == vm.paused, was.heldUntilUnix == vm.heldUntilUnix else { return true }
            let change = abs(Int(vm.cpuMilli) - Int(was.cpuMilli))
            if change > 100 && Double(change) > 0.2 * Double(max(was.cpuMilli, 1)) { return true }
        }
        return false
    }

    /// A peer's update: records merged (the changed ones stored first), its load kept if newer.
    func receive(_ update: Hostmesh_V1_DrsUpdate, from peer: String) async {
        if update.hasLoad, update.load.hostID == peer {
            let current = loads[peer]
            if current == nil || current!.instanceID != update.load.instanceID || current!.sequence < update.load.sequence {
                loads[peer] = update.load
                if update.load.sentUnixMs != 0 { clockOffsets[peer] = Date().timeIntervalSince1970 * 1000 - Double(update.load.sentUnixMs) }
            }
        }
        let incoming = update.records.compactMap(DRSRecordCoding.record)
        let before = records
        await merge(incoming, from: peer)
        await uniteScheduleRuns(incoming, held: before)
    }

    /// Merges received records: the changed ones stored first, then applied.
    private func merge(_ incoming: [DRSRecord], from peer: String) async {
        var next = records
        let changed = next.merge(incoming)
        guard !changed.isEmpty else { return }
        do {
            try await store.save(changed)
        } catch {
            // Not applied: a record that is not durable here must not steer this host. The peer sends it again next sync.
            logger.error("cannot store replicated DRS records; they are applied once they can be", metadata: ["mesh.peer": "\(peer)", "error": "\(error)"])
            return
        }
        // Merging again is idempotent and picks up records written here meanwhile.
        _ = records.merge(changed)
        recordsChanged = true
        logger.info("DRS records updated", metadata: ["mesh.peer": "\(peer)", "drs.keys": "\(changed.map(\.key))"])
        await applyLocalMaintenance()
    }

    /// Schedule run records merge by union (Protocol.md §12.3): where the winning copy of a
    /// `schedule-runs/<id>` lacks outcomes the other held, the union is written here.
    private func uniteScheduleRuns(_ incoming: [DRSRecord], held before: ReplicatedRecords<DRSRecordBody>) async {
        for record in incoming {
            guard case .scheduleRuns(let theirs)? = record.body, case .scheduleRuns(let ours)? = before.records[record.key]?.body,
                  case .scheduleRuns(let winner)? = records.records[record.key]?.body else { continue }
            guard ours.merged(with: theirs) != winner else { continue }
            // The union with what the key holds in the write's turn (an outcome recorded meanwhile stays).
            let update: @Sendable (DRSRecordBody?) -> DRSRecordBody? = { body in
                guard case .scheduleRuns(let current)? = body else { return body }
                return .scheduleRuns(current.merged(with: ours).merged(with: theirs))
            }
            do { try await self.update(record.key, update) } catch {
                logger.error("cannot store the union of a schedule's outcomes; the next update tries again", metadata: ["error": "\(error)"])
            }
        }
    }

    /// A member that is gone no longer reports loads.
    func forget(_ host: String) {
        loads[host] = nil
        clockOffsets[host] = nil
    }

    /// Measures this host's VMs: demand from their vCPU threads, holds from the migration history.
    private func measure() async -> Hostmesh_V1_DrsHostLoad {
        sequence += 1
        var load = Hostmesh_V1_DrsHostLoad()
        load.hostID = hostID
        load.sequence = sequence
        load.instanceID = Data(instance)
        load.sentUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        let list: [VMInfo]
        do { list = try await vms.list() } catch {
            logger.error("cannot list this host's VMs for DRS; its last report stands", metadata: ["error": "\(error)"])
            return loads[hostID] ?? load
        }
        let held = await heldUntil()
        let resources: [String: VMSpec.Resources]
        do { resources = try await vms.resourceSettings() } catch {
            // Reported without: placement then sees no reservation or pool for this sync; the next reads again.
            logger.error("cannot read this host's VMs' resource settings for DRS", metadata: ["error": "\(error)"])
            resources = [:]
        }
        // A migration on this host (either direction) inflates every local VM's run-queue wait and
        // takes CPU of its own: an interval that overlaps one measures the migration, not the VMs,
        // so it is skipped and each VM keeps its demand from before (not `busy`: evacuations and
        // concurrent moves go on) until an interval free of migrations has been measured.
        // One that began and ended between two samples shows in the count of those begun.
        let (inFlight, begun) = await (coordinator.inFlight, coordinator.begun)
        let migrating = inFlight > 0
        let overlapsMigration = migrating || migratingAtLastMeasure || begun != migrationsBegunAtLastMeasure
        migratingAtLastMeasure = migrating
        migrationsBegunAtLastMeasure = begun
        let now = ContinuousClock.now
        var next: [String: VMDemandSampler.Sample] = [:]
        let inOperation = await vms.inOperation()
        for vm in list where ["running", "migrating", "incoming", "paused"].contains(vm.state) {
            var sample = samples[vm.id]
            if let pid = vm.pid, let ns = VMDemandSampler.vcpuNanoseconds(pid: pid) {
                sample = VMDemandSampler.next(after: sample, reading: ns, at: now, measures: !overlapsMigration)
            }
            next[vm.id] = sample
            var reported = Hostmesh_V1_DrsVmLoad()
            reported.vmID = vm.id
            reported.name = vm.name
            reported.memoryMib = UInt32(vm.memoryMiB)
            reported.cpuMilli = UInt32(max(0, sample?.milli ?? 0))
            reported.heldUntilUnix = held[vm.name] ?? 0
            // Not measured yet, or in an operation: nothing moves it for now. Paused and in no
            // operation (an operator's `vm pause`; a fenced copy's state is in-doubt): it stays,
            // and is not busy (§10.2). In an operation (a storage move's switchover, a resume
            // under way), its QEMU's `paused` is that operation's: busy.
            let operation = inOperation.contains(vm.id)
            reported.paused = vm.state == "paused" && !operation
            reported.busy = !["running", "paused"].contains(vm.state) || (vm.state == "paused" && operation) || sample?.milli == nil
                || moving.contains(vm.id)
            if let pid = vm.pid, let resident = VMDemandSampler.residentMiB(pid: pid) { reported.memoryUsedMib = UInt32(min(resident, vm.memoryMiB)) }
            if let r = resources[vm.id] {
                reported.pool = r.pool ?? ""
                reported.cpuAllocation = DRSRecordCoding.wire(Self.allocation(r.cpu))
                reported.memoryAllocation = DRSRecordCoding.wire(Self.allocation(r.memory))
                reported.automation = r.automation ?? ""
                reported.threshold = UInt32(r.threshold ?? 0)
            }
            load.vms.append(reported)
        }
        samples = next
        loads[hostID] = load
        return load
    }

    /// Per VM name: the end of its last completed migration plus the hold (unix seconds).
    private func heldUntil() async -> [String: Int64] {
        let history: [MigrationRecord]
        do { history = try await journal.history() } catch {
            // Unknown history: hold every VM (the safe side: balancing waits), at the next sync it is read again.
            logger.error("cannot read the migration history for DRS holds; balancing leaves this host's VMs alone meanwhile", metadata: ["error": "\(error)"])
            return (loads[hostID]?.vms ?? []).reduce(into: [:]) { $0[$1.name] = Int64.max }
        }
        var held: [String: Int64] = [:]
        for record in history where record.error == nil {
            guard let ended = record.endedAt else { continue }
            let until = Int64(ended + configuration.hold)
            held[record.vm] = max(held[record.vm] ?? 0, until)
        }
        return held
    }

    /// This host follows its own maintenance record: refuses new and incoming VMs and says so
    /// in its gossiped metadata while it is in maintenance.
    private func applyLocalMaintenance() async {
        // The pools too: this host's VMs in a pool follow its CPU limit and shares.
        await vms.usePools(poolCPU)
        let active = maintenance(of: hostID)?.active ?? false
        guard appliedMaintenance != active else { return }
        if appliedMaintenance == nil && active {
            logger.notice("this host is in maintenance: carrying on with its evacuation", metadata: ["mesh.host": "\(hostID)"])
        }
        appliedMaintenance = active
        await vms.setMaintenance(active)
        // A later call (the record changed back meanwhile) applies its own state; this one's is stale.
        guard appliedMaintenance == active else { return }
        await membership.setMaintenance(active)
        logger.notice(active ? "host entered maintenance: it takes no VM and evacuates its own" : "host back in service",
                      metadata: ["mesh.host": "\(hostID)"])
    }

    // MARK: - Rounds

    /// The view and its decision now.
    func decide() async -> (DRSRound.Decision, PlacementInput) {
        let members = await membership.service.members().map(\.member)
        let view = DRSViewBuilder.input(members: members, loads: loads, rules: rules, maintenance: hostsInMaintenance, domain: domain,
                                        nowUnix: Int64(Date().timeIntervalSince1970), healthPolicy: healthPolicy, pools: pools)
        // Each migration counts on both its hosts; this agent's own moves count at once, before
        // its gossiped capacity says so (up to a refresh interval later).
        let inFlight = max((DRSViewBuilder.migrationsInFlight(members) + 1) / 2, moving.count)
        let decision = DRSRound.decide(DRSRound.Input(view: view, settings: settings, localHost: hostID, migrationsInFlight: inFlight,
                                                      maxConcurrentMoves: configuration.maxConcurrentMoves))
        return (decision, view)
    }

    /// One round: the moves this host starts now, each claimed (so the next round does not
    /// start it again) until `finished(_:)`.
    func round() async -> [(PlacementMove, HostPort)] {
        let (decision, _) = await decide()
        lastRound = Date().timeIntervalSince1970
        for unplaced in decision.plan.unplaced where unplaced.host == hostID {
            logger.warning("a VM that must move has nowhere to go; it stays", metadata: ["vm.name": "\(unplaced.vmName)", "drs.reason": "\(unplaced.reason)"])
        }
        let members = await membership.service.members().map(\.member)
        var starts: [(PlacementMove, HostPort)] = []
        for move in decision.execute where !moving.contains(move.vm) {
            guard let channel = members.first(where: { $0.id.hostID == move.to })?.metadata?.channelAddress else { continue }
            moving.insert(move.vm)
            movesStarted += 1
            starts.append((move, HostPort(host: channel.host, port: Int(channel.port))))
        }
        return starts
    }

    /// Carries out one move (the VM was claimed by `round()` or `apply`): its report, or the
    /// migration's failure, logged and counted (`result="failed"`) before it is thrown. A failed
    /// move leaves no hold (only completed migrations hold a VM, Protocol.md §10.5): the next
    /// round decides again on the mesh as it is then.
    @discardableResult
    func execute(_ move: PlacementMove, to destination: HostPort) async throws -> MigrationReport {
        logger.notice("DRS moves a VM", metadata: ["vm.name": "\(move.vmName)", "drs.from": "\(move.from)", "drs.to": "\(move.to)",
                                                    "drs.reason": "\(move.reason)",
                                                    "drs.imbalance": "\(String(format: "%.3f -> %.3f", move.imbalanceBefore, move.imbalanceAfter))"])
        defer { moving.remove(move.vm) }
        DRSMetrics.moveStarted(move, events: events)
        do {
            let report = try await coordinator.migrate(move.vm, to: destination, settings: MigrationSettings(), queue: false) { _ in }
            logger.notice("DRS move done", metadata: ["vm.name": "\(move.vmName)", "drs.to": "\(move.to)", "migration.total_ms": "\(report.totalMs)"])
            DRSMetrics.moveEnded(move, result: "completed", events: events)
            return report
        } catch {
            DRSMetrics.moveEnded(move, result: "failed", events: events)
            logger.warning("DRS move failed; the next round decides again", metadata: [
                "vm.name": "\(move.vmName)", "drs.to": "\(move.to)", "error": "\(error)"])
            throw error
        }
    }

    /// Remembers the moves of a plan shown to an operator (the last 256).
    func remember(_ moves: [(String, PlacementMove)]) {
        for (id, move) in moves { shown[id] = move }
        if shown.count > 256 { shown = Dictionary(uniqueKeysWithValues: moves) }
    }

    func shownMove(_ id: String) -> PlacementMove? { shown[id] }

    /// Claims a recommended move of this host's VM for `drs apply`.
    func claim(_ move: PlacementMove) async throws -> HostPort {
        guard move.from == hostID else {
            throw ControlError.conflict("\(move.vmName) runs on \(move.from): run `hostmesh drs apply` on that host (only a VM's owner moves it)")
        }
        guard !moving.contains(move.vm) else { throw ControlError.conflict("\(move.vmName) is already being moved") }
        let members = await membership.service.members().map(\.member)
        guard let channel = members.first(where: { $0.id.hostID == move.to })?.metadata?.channelAddress else {
            throw ControlError.unavailable("\(move.to) has not gossiped its channel address yet: try again in a few seconds")
        }
        moving.insert(move.vm)
        movesStarted += 1
        return HostPort(host: channel.host, port: Int(channel.port))
    }

    var roundTime: Double? { lastRound }
    /// Whether this host is evacuating (its rounds then run at every sync).
    var evacuating: Bool { maintenance(of: hostID)?.active ?? false || healthPolicy.evacuates(localHealth) }
}

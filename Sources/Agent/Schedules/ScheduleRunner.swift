import ControlAPI
import Foundation
import Hypervisor
import Logging
import MigrationService
import Placement
import Schedules

/// Runs the occurrences this host is the executor of (Protocol.md §12.3): the replicated
/// schedules and run records come from DRS's record set; which occurrences are due and this
/// host's comes from the pure `ScheduleBook.due`; each is journaled by occurrence id before its
/// action starts, and its outcome goes into the replicated run record.
actor ScheduleRunner {
    let hostID: String
    private let controller: DRSController
    private let vms: VMManager
    private let migrations: MigrationJournal
    private let occurrences: OccurrenceJournal
    private let coordinator: MigrationCoordinator
    private let membership: AgentMembership
    let rules: ScheduleBook.Rules
    private let logger: Logger
    private var journaled: Set<String> = []
    private var loaded = false

    init(hostID: String, controller: DRSController, vms: VMManager, migrations: MigrationJournal, occurrences: OccurrenceJournal,
         coordinator: MigrationCoordinator, membership: AgentMembership, rules: ScheduleBook.Rules, logger: Logger) {
        self.hostID = hostID
        self.controller = controller
        self.vms = vms
        self.migrations = migrations
        self.occurrences = occurrences
        self.coordinator = coordinator
        self.membership = membership
        self.rules = rules
        self.logger = logger
    }

    /// Loads the journal; occurrences a previous run of the agent left unfinished are recorded
    /// interrupted (their action may or may not have happened: they are not run again).
    private func load() async throws {
        guard !loaded else { return }
        journaled = try await occurrences.journaled()
        for open in try await occurrences.unfinished() {
            let detail = "the agent stopped while it ran; not run again (see `hostmesh migrations` for what happened)"
            try await occurrences.end(open.id, outcome: OccurrenceResult.Outcome.interrupted.rawValue, detail: detail)
            try await record(open.schedule, OccurrenceResult(index: open.index, outcome: .interrupted, detail: detail, executor: hostID,
                                                             atUnix: Self.now))
        }
        loaded = true
    }

    static var now: Int64 { Int64(Date().timeIntervalSince1970) }

    /// One tick: the occurrences to run now, each journaled (claimed) already; missed ones recorded.
    func tick() async -> [(Schedule, Int)] {
        do { try await load() } catch {
            // Without the journal this host cannot know what it already ran: it runs nothing.
            logger.error("cannot read the schedule occurrence journal; no occurrence runs here until it can", metadata: ["error": "\(error)"])
            return []
        }
        let schedules = await controller.schedules
        guard !schedules.isEmpty else { return [] }
        let holdings: [String: Int64]
        do { holdings = try await self.holdings() } catch {
            logger.error("cannot read this host's VMs for schedules; their occurrences wait", metadata: ["error": "\(error)"])
            return []
        }
        let host = hostID
        let directives = ScheduleBook.due(schedules: schedules, runs: await controller.scheduleRuns, journaled: journaled, executor: { schedule in
            switch schedule.action {
            case .migrate(let vm, _): holdings[vm].map { .here(sinceUnix: $0) } ?? .elsewhere
            case .enterMaintenance(let h): h == host ? .here(sinceUnix: .min) : .elsewhere
            }
        }, nowUnix: Self.now, rules: rules)
        var starts: [(Schedule, Int)] = []
        for directive in directives {
            let (id, index, missed): (String, Int, Bool)
            switch directive {
            case let .run(s, i): (id, index, missed) = (s, i, false)
            case let .missed(s, i): (id, index, missed) = (s, i, true)
            }
            guard let schedule = schedules.first(where: { $0.id == id }) else { continue }
            let occurrence = schedule.occurrenceID(index)
            do {
                guard try await occurrences.begin(occurrence, schedule: id, index: index) else { journaled.insert(occurrence); continue }
                journaled.insert(occurrence)
                if missed {
                    let detail = "this host (its executor) was down from its time until past the grace period (\(rules.grace) s)"
                    try await finish(schedule, index, .missed, detail)
                    logger.warning("scheduled occurrence missed", metadata: ["schedule.occurrence": "\(occurrence)"])
                } else {
                    starts.append((schedule, index))
                }
            } catch {
                // Not journaled: not run. The next tick tries again (within the grace period).
                logger.error("cannot journal a scheduled occurrence; it is not run until it can be", metadata: ["schedule.occurrence": "\(occurrence)", "error": "\(error)"])
            }
        }
        return starts
    }

    /// VM name and id -> since when this host holds it (unix seconds): the end of its latest
    /// completed incoming migration, or forever (it was created here). VMs in an operation are
    /// left out: their occurrences wait until it ends (and are another host's if the VM left).
    private func holdings() async throws -> [String: Int64] {
        let list = try await vms.list()
        var arrived: [String: Int64] = [:]
        for record in try await migrations.history() where record.role == "destination" && record.error == nil {
            guard let ended = record.endedAt else { continue }
            arrived[record.vm] = max(arrived[record.vm] ?? .min, Int64(ended.rounded(.up)))
        }
        var out: [String: Int64] = [:]
        for vm in list where ["running", "paused"].contains(vm.state) {
            let since = arrived[vm.name] ?? arrived[vm.id] ?? .min
            out[vm.name] = since
            out[vm.id] = since
        }
        return out
    }

    /// Carries out one claimed occurrence and records its outcome.
    func execute(_ schedule: Schedule, _ index: Int) async {
        let occurrence = schedule.occurrenceID(index)
        logger.notice("scheduled occurrence runs", metadata: ["schedule.occurrence": "\(occurrence)", "schedule.command": "\(schedule.action)"])
        let outcome: OccurrenceResult.Outcome
        let detail: String
        do {
            (outcome, detail) = try await perform(schedule.action)
        } catch let error as ControlError {
            (outcome, detail) = (.failed, error.message)
        } catch {
            (outcome, detail) = (.failed, "\(error)")
        }
        logger.notice("scheduled occurrence ended", metadata: ["schedule.occurrence": "\(occurrence)", "schedule.outcome": "\(outcome.rawValue)",
                                                              "schedule.detail": "\(detail)"])
        do { try await finish(schedule, index, outcome, detail) } catch {
            logger.error("cannot record a scheduled occurrence's outcome; it stays journaled (never run again) without one",
                         metadata: ["schedule.occurrence": "\(occurrence)", "error": "\(error)"])
        }
    }

    private func perform(_ action: ScheduledAction) async throws -> (OccurrenceResult.Outcome, String) {
        switch action {
        case let .enterMaintenance(host):
            if await controller.maintenance(of: host)?.active == true { return (.done, "\(host) was already in maintenance") }
            try await controller.write(DRSRecordBody.maintenanceKey(host), .maintenance(MaintenanceRequest(active: true, since: Self.now)))
            return (.done, "\(host) entered maintenance")
        case let .migrate(vm, to):
            let (_, view) = await controller.decide()
            guard let placed = view.vms.first(where: { ($0.name == vm || $0.id == vm) && $0.host == hostID }) else {
                return (.skipped, "\(vm) is not on \(hostID) any more")
            }
            let destination: String
            if let to {
                guard to != hostID else { return (.skipped, "\(vm) is already on \(to)") }
                if let refusal = Placement.refusal(moving: placed.id, from: hostID, to: to, in: view) { return (.failed, "\(vm) cannot move to \(to): \(refusal)") }
                destination = to
            } else {
                var without = view
                without.vms.removeAll { $0.id == placed.id }
                do {
                    guard let best = try Placement.rank(placed, in: without).first(where: { $0.host != hostID }) else {
                        return (.failed, "no other host takes \(vm)")
                    }
                    destination = best.host
                } catch { return (.failed, "no host takes \(vm): \(error)") }
            }
            guard let channel = await membership.service.members().first(where: { $0.member.id.hostID == destination })?.member.metadata?.channelAddress else {
                return (.failed, "\(destination) has not gossiped its channel address")
            }
            let report = try await coordinator.migrate(placed.id, to: HostPort(host: channel.host, port: Int(channel.port)), settings: MigrationSettings()) { _ in }
            return (.done, "\(vm) moved to \(destination) in \(report.totalMs) ms")
        }
    }

    private func finish(_ schedule: Schedule, _ index: Int, _ outcome: OccurrenceResult.Outcome, _ detail: String) async throws {
        try await occurrences.end(schedule.occurrenceID(index), outcome: outcome.rawValue, detail: detail)
        try await record(schedule.id, OccurrenceResult(index: index, outcome: outcome, detail: detail, executor: hostID, atUnix: Self.now))
    }

    private func record(_ scheduleID: String, _ result: OccurrenceResult) async throws {
        // Added to what the record holds in the write's turn: an outcome united meanwhile stays.
        try await controller.update(DRSRecordBody.scheduleRunsKey(scheduleID)) { body in
            var runs = ScheduleRuns()
            if case .scheduleRuns(let current)? = body { runs = current }
            runs.record(result)
            return .scheduleRuns(runs)
        }
    }
}

import ControlAPI
import Foundation
import HostHealth
import Logging
import Membership

/// Measures this host's health (Protocol.md §11.1) every few seconds, keeps it through the pure
/// `HealthTracker` (hysteresis), and reports it: in the gossiped member metadata (state and
/// reasons) and to DRS (a host its policy evacuates runs its rounds at every sync).
actor HealthMonitor {
    let hostID: String
    private let store: AgentStore
    private let vms: VMManager
    private let drs: DRSController
    private let membership: AgentMembership
    private let thresholds: HealthThresholds
    private let logger: Logger
    private var tracker: HealthTracker
    private(set) var lastMeasurement: HealthMeasurement?
    private var reported: HealthTracker.Status?
    /// VM name -> state at the last sample, and the QEMU deaths seen (name, when).
    private var lastStates: [String: String] = [:]
    private var deaths: [(name: String, at: ContinuousClock.Instant)] = []
    /// A QEMU death counts against the host this long.
    static let deathMemory = Duration.seconds(600)

    init(hostID: String, store: AgentStore, vms: VMManager, drs: DRSController, membership: AgentMembership, settings: HealthTracker.Settings,
         thresholds: HealthThresholds, logger: Logger) {
        self.hostID = hostID
        self.store = store
        self.vms = vms
        self.drs = drs
        self.membership = membership
        self.thresholds = thresholds
        self.logger = logger
        tracker = HealthTracker(settings: settings)
    }

    /// One full sample: measure, assess, track, report.
    func sample() async {
        var m = HealthMeasurement()
        m.qemuFailures = await qemuFailures()
        m.journalWriteMs = await HealthProbes.journalWriteMs(store)
        m.pressure = HealthProbes.pressure()
        m.eventLoopLagMs = await HealthProbes.eventLoopLagMs()
        m.clockSkewMs = HealthMeasurement.clockSkew(offsets: await drs.peerClockOffsets)
        lastMeasurement = m
        let (state, reasons) = HealthAssessment.assess(m, thresholds: thresholds)
        tracker.observe(state, reasons: reasons)
        await report()
    }

    /// Applies the operator's replicated mark for this host, at once (between samples too).
    func report() async {
        let mark = await drs.healthMark(of: hostID)
        tracker.setOperator(mark?.state ?? .healthy, reason: mark?.reason ?? "")
        let status = tracker.status
        guard status != reported else { return }
        if reported?.state != status.state {
            logger.notice("host health changed", metadata: ["mesh.host": "\(hostID)", "health.state": "\(status.state.rawValue)",
                                                           "health.reasons": "\(status.reasons.map(\.description))"])
        }
        reported = status
        await membership.setHealth(MemberMetadata.Health(status.state), reasons: status.reasons.map(\.description))
        await drs.setLocalHealth(status.state)
    }

    var status: HealthTracker.Status { tracker.status }

    /// VMs wanted running whose QEMU died in the last `deathMemory` or does not answer QMP now.
    private func qemuFailures() async -> [String] {
        let list: [VMInfo]
        do { list = try await vms.list() } catch {
            logger.warning("cannot list this host's VMs for its health; QEMU failures are not counted this time", metadata: ["error": "\(error)"])
            return deaths.map(\.name)
        }
        let now = ContinuousClock.now
        var notAnswering: [String] = []
        for vm in list {
            let dead = ["crashed", "restarting", "failed"].contains(vm.state)
            if dead, let before = lastStates[vm.name], !["crashed", "restarting", "failed"].contains(before) { deaths.append((vm.name, now)) }
            if vm.state == "unknown" { notAnswering.append(vm.name) }
        }
        lastStates = Dictionary(list.map { ($0.name, $0.state) }, uniquingKeysWith: { a, _ in a })
        deaths.removeAll { now - $0.at > Self.deathMemory }
        return deaths.map { "\($0.name) died" } + notAnswering.map { "\($0) not answering QMP" }
    }
}

extension MemberMetadata.Health {
    init(_ state: HealthState) {
        switch state {
        case .healthy: self = .ok
        case .degraded: self = .degraded
        case .failing: self = .unhealthy
        }
    }
}

extension HealthState {
    init(_ health: MemberMetadata.Health) {
        switch health {
        case .ok: self = .healthy
        case .degraded: self = .degraded
        case .unhealthy: self = .failing
        }
    }
}

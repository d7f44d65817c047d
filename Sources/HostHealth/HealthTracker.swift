/// A host's reported health from its successive measurements, with hysteresis (Protocol.md
/// §11.2): a state is entered when at least `enterCount` of the last `window` samples reach it,
/// and left only after `recoverCount` samples in a row below it. A single spike changes
/// nothing; a host flapping between states stays at the worse one, so the VMs that left it do
/// not come back and the ones still there do not leave and return. Pure: samples in, state out;
/// the shell samples every few seconds.
public struct HealthTracker: Sendable, Hashable {
    public struct Settings: Sendable, Hashable {
        /// Samples remembered.
        public var window: Int
        /// Samples of the window at a state (or worse) that enter it.
        public var enterCount: Int
        /// Samples in a row below the reported state that leave it.
        public var recoverCount: Int

        /// 3 of the last 6 enter (15 s at one sample per 5 s); 12 in a row (a minute) leave.
        public init(window: Int = 6, enterCount: Int = 3, recoverCount: Int = 12) {
            precondition(window >= 1 && (1...window).contains(enterCount) && recoverCount >= 1, "health hysteresis settings out of range") // programmer error: settings are validated where configured
            self.window = window
            self.enterCount = enterCount
            self.recoverCount = recoverCount
        }
    }

    /// What the host says about itself now.
    public struct Status: Sendable, Hashable {
        /// The worse of the measured state and the operator's.
        public var state: HealthState
        /// The measured state after hysteresis.
        public var measured: HealthState
        /// The state an operator set (`hostmesh host health set`), healthy when none.
        public var operatorState: HealthState
        /// Why, worst first: the operator's reason, then the measurements that put the host in
        /// its measured state (from the latest sample that reached it).
        public var reasons: [HealthReason]
    }

    public let settings: Settings
    private var recent: [HealthState] = []
    private var measured: HealthState = .healthy
    private var calm = 0
    private var measuredReasons: [HealthReason] = []
    private var operatorMark: HealthReason?

    public init(settings: Settings = Settings()) { self.settings = settings }

    /// One sample, assessed by `HealthAssessment.assess`.
    @discardableResult
    public mutating func observe(_ state: HealthState, reasons: [HealthReason]) -> Status {
        recent.append(state)
        if recent.count > settings.window { recent.removeFirst(recent.count - settings.window) }
        let reached = HealthState.allCases.last { level in recent.filter { $0 >= level }.count >= settings.enterCount } ?? .healthy
        if reached > measured {
            measured = reached
            calm = 0
        } else if state < measured {
            calm += 1
            if calm >= settings.recoverCount {
                measured = reached
                calm = 0
            }
        } else {
            calm = 0
        }
        if state >= measured && state != .healthy { measuredReasons = reasons.filter { $0.state >= measured } }
        if measured == .healthy { measuredReasons = [] }
        return status
    }

    /// Sets (or with `.healthy`, withdraws) the operator's state. It applies at once, without
    /// hysteresis, and it cannot hide what the host measures: the worse of the two is reported.
    public mutating func setOperator(_ state: HealthState, reason: String) {
        operatorMark = state == .healthy ? nil : HealthReason(state, "set by an operator: \(reason)")
    }

    public var status: Status {
        let operatorState = operatorMark?.state ?? .healthy
        return Status(state: max(measured, operatorState), measured: measured, operatorState: operatorState,
                      reasons: (operatorMark.map { [$0] } ?? []) + measuredReasons)
    }
}

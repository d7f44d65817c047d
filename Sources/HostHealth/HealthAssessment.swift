/// The state one measurement shows, with a reason per bound crossed (Protocol.md §11.1). Pure.
public enum HealthAssessment {
    /// The worst state any measurement reaches, and the reasons (worst first, then by text).
    public static func assess(_ m: HealthMeasurement, thresholds t: HealthThresholds) -> (HealthState, [HealthReason]) {
        var reasons: [HealthReason] = []
        func check(_ value: Double?, _ bounds: HealthThresholds.Bounds, _ text: (Double) -> String) {
            guard let value else { return }
            let state = bounds.state(value)
            guard state != .healthy else { return }
            reasons.append(HealthReason(state, text(value)))
        }
        if !m.qemuFailures.isEmpty {
            let state = t.qemuFailures.state(Double(m.qemuFailures.count))
            if state != .healthy {
                reasons.append(HealthReason(state, "QEMU dead or not answering QMP: \(m.qemuFailures.sorted().prefix(4).joined(separator: ", "))"))
            }
        }
        check(m.journalWriteMs, t.journalWriteMs) { $0.isFinite ? "journal write took \(Int($0)) ms" : "journal write failed" }
        for key in m.pressure.keys.sorted() {
            guard let bounds = t.pressure[key], let value = m.pressure[key] else { continue }
            check(value, bounds) { "\(key) pressure \(Self.percent($0))% over 10 s" }
        }
        check(m.eventLoopLagMs, t.eventLoopLagMs) { "event loop \(Int($0)) ms late" }
        check(m.clockSkewMs.map(abs), t.clockSkewMs) { _ in "clock \(Int(m.clockSkewMs ?? 0)) ms off its peers" }
        reasons.sort { ($0.state, $1.text) > ($1.state, $0.text) }
        return (reasons.first?.state ?? .healthy, reasons)
    }

    static func percent(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

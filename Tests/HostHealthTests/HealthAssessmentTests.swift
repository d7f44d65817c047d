import HostHealth
import Testing

@Suite struct HealthAssessmentTests {
    let thresholds = HealthThresholds()

    @Test func aQuietHostIsHealthy() {
        let (state, reasons) = HealthAssessment.assess(HealthMeasurement(qemuFailures: [], journalWriteMs: 4, pressure: ["memory full": 0, "io full": 1.5, "cpu some": 95],
                                                                         eventLoopLagMs: 3, clockSkewMs: -40), thresholds: thresholds)
        #expect(state == .healthy)
        #expect(reasons.isEmpty)
    }

    @Test func eachMeasurementGivesItsReasonAndTheWorstWins() {
        let (state, reasons) = HealthAssessment.assess(HealthMeasurement(qemuFailures: ["web died", "db died"], journalWriteMs: 6_000, pressure: ["memory full": 12.34],
                                                                         eventLoopLagMs: 1_500, clockSkewMs: -3_000), thresholds: thresholds)
        #expect(state == .failing)
        #expect(reasons.first == HealthReason(.failing, "journal write took 6000 ms"))
        #expect(Set(reasons.map(\.text)) == ["journal write took 6000 ms", "QEMU dead or not answering QMP: db died, web died", "memory full pressure 12.3% over 10 s",
                                             "event loop 1500 ms late", "clock -3000 ms off its peers"])
        #expect(reasons.dropFirst().allSatisfy { $0.state == .degraded })
    }

    @Test func aJournalThatCannotBeWrittenIsFailing() {
        let (state, reasons) = HealthAssessment.assess(HealthMeasurement(journalWriteMs: .infinity), thresholds: thresholds)
        #expect(state == .failing)
        #expect(reasons == [HealthReason(.failing, "journal write failed")])
    }

    @Test func qemuDeathsCountFromTwo() {
        #expect(HealthAssessment.assess(HealthMeasurement(qemuFailures: ["a"]), thresholds: thresholds).0 == .healthy)
        #expect(HealthAssessment.assess(HealthMeasurement(qemuFailures: ["a", "b"]), thresholds: thresholds).0 == .degraded)
        #expect(HealthAssessment.assess(HealthMeasurement(qemuFailures: ["a", "b", "c", "d", "e"]), thresholds: thresholds).0 == .failing)
    }

    @Test func cpuPressureIsNotEvaluatedUnlessConfigured() {
        var t = thresholds
        #expect(HealthAssessment.assess(HealthMeasurement(pressure: ["cpu some": 99]), thresholds: t).0 == .healthy)
        t.pressure["cpu some"] = .init(degraded: 90, failing: nil)
        #expect(HealthAssessment.assess(HealthMeasurement(pressure: ["cpu some": 99]), thresholds: t).0 == .degraded)
    }

    @Test func clockSkewIsTheLowerMedianByMagnitude() {
        #expect(HealthMeasurement.clockSkew(offsets: [5_000]) == nil)
        // One skewed peer among two does not make this host skewed.
        #expect(HealthMeasurement.clockSkew(offsets: [12, 9_000]) == 12)
        // Every peer disagrees the same way: this host is the skewed one.
        #expect(HealthMeasurement.clockSkew(offsets: [-9_000, -9_010, -8_990]) == -9_000)
        #expect(HealthMeasurement.clockSkew(offsets: [3, -9_000, 8_000, 2]) == 3)
    }

    @Test func policyEvacuates() {
        #expect(!HealthPolicy.off.evacuates(.failing))
        #expect(HealthPolicy.evacuateWhenFailing.evacuates(.failing))
        #expect(!HealthPolicy.evacuateWhenFailing.evacuates(.degraded))
        #expect(HealthPolicy.evacuateWhenDegraded.evacuates(.degraded))
        #expect(!HealthPolicy.evacuateWhenDegraded.evacuates(.healthy))
        #expect(HealthPolicy(rawValue: "evacuate-when-degraded") == .evacuateWhenDegraded)
    }
}

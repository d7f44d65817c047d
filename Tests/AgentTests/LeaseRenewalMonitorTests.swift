@testable import Agent
import Foundation
import HA
import Logging
import Testing

/// The agent's warning before a lease keeper fences (`LeaseRenewalMonitor`), from real keeper
/// report files: a renewal that landed on a lease older than halfway to the fence, and a lease
/// whose last renewal landed that long ago (a write that hangs); once a minute per VM at most.
@Suite struct LeaseRenewalMonitorTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("hm-lease-monitor-\(UUID().uuidString.prefix(8))").path

    func write(_ report: LeaseRenewalWatch.Report, vm: String, age: TimeInterval = 0) throws -> String {
        let runtime = root + "/" + vm
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        let path = LeaseKeeper.renewalsFile(runtimeDirectory: runtime)
        try report.text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-age)], ofItemAtPath: path)
        return runtime
    }

    @Test func warnsBeforeTheFenceOnceAMinute() throws {
        defer { try? FileManager.default.removeItem(atPath: root) } // test cleanup
        // The keepers' timings: renew 1 s, fence 4 s, so warnings from 2.5 s.
        func report(stretch ms: Int64) -> LeaseRenewalWatch.Report {
            .init(lastWrite: .milliseconds(5), slowestWrite: .milliseconds(ms - 1_000), longestStretch: .milliseconds(ms),
                  renewInterval: .seconds(1), fenceAfter: .seconds(4))
        }
        let healthy = try write(report(stretch: 1_020), vm: "healthy")
        let slow = try write(report(stretch: 3_100), vm: "slow")
        let hung = try write(report(stretch: 1_010), vm: "hung", age: 2.8)
        var monitor = LeaseRenewalMonitor()
        let logger = Logger(label: "test")
        let copies = [(id: "h", name: "healthy", runtime: healthy), (id: "s", name: "slow", runtime: slow), (id: "g", name: "hung", runtime: hung),
                      (id: "n", name: "no-report-yet", runtime: root + "/none")]
        let said = monitor.check(copies: copies, logger: logger)
        #expect(said.count == 2, "\(said)")
        #expect(said.contains { $0.hasPrefix("a lease renewal landed on a lease 3.10 s old") })
        let silence = try #require(said.first { $0.hasPrefix("no lease renewal has landed for ") }, "\(said)")
        let seconds = try #require(Double(silence.dropFirst("no lease renewal has landed for ".count).prefix { $0 != " " }), "\(silence)")
        #expect(seconds >= 2.8 && seconds < 60, "\(silence)")
        // Still slow a moment later: not said again within the minute.
        #expect(monitor.check(copies: copies, logger: logger).isEmpty)
    }
}

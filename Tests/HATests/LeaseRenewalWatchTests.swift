import Foundation
import HA
import MeshTime
import Testing

/// `LeaseRenewalWatch`: how old the lease was when each renewal landed, the figures over the last
/// minute, where the warning starts, and the report file's text.
@Suite struct LeaseRenewalWatchTests {
    static let settings = LeaseSettings() // renew 1 s, fence 4 s
    static func at(_ ms: Int64) -> MeshInstant { MeshInstant(sinceOrigin: .milliseconds(ms)) }

    @Test func stretchesCountFromTheLastRenewalThatLandedAndTheWindowForgets() throws {
        var watch = LeaseRenewalWatch(settings: Self.settings, acquiredAt: Self.at(0))
        #expect(watch.report == nil)
        #expect(watch.warnAfter == .milliseconds(2_500)) // halfway from the 1 s interval to the 4 s fence
        // Issued at 1 s, landed at 1.02 s: the lease was 1.02 s old.
        let first = watch.completed(startedAt: Self.at(1_000), at: Self.at(1_020))
        #expect(first.write == .milliseconds(20) && first.stretch == .milliseconds(1_020))
        // A slow storage: issued at 2.02 s, landed at 4.9 s, on a lease issued at 1 s.
        let slow = watch.completed(startedAt: Self.at(2_020), at: Self.at(4_900))
        #expect(slow.write == .milliseconds(2_880) && slow.stretch == .milliseconds(3_900))
        #expect(slow.stretch > watch.warnAfter && first.stretch <= watch.warnAfter)
        let quick = watch.completed(startedAt: Self.at(4_900), at: Self.at(4_910))
        #expect(quick.stretch == .milliseconds(2_890)) // from the slow one's issue
        var report = try #require(watch.report)
        #expect(report == .init(lastWrite: .milliseconds(10), slowestWrite: .milliseconds(2_880), longestStretch: .milliseconds(3_900),
                                fenceAfter: .seconds(4)))
        // A minute after them the slow one has left the window (and the long silence before
        // this renewal is its own stretch).
        watch.completed(startedAt: Self.at(64_970), at: Self.at(65_000))
        report = try #require(watch.report)
        #expect(watch.renewals.count == 1)
        #expect(report.slowestWrite == .milliseconds(30) && report.longestStretch == .milliseconds(60_100))
    }

    @Test func theReportReadsBackAndABadOneDoesNot() {
        let report = LeaseRenewalWatch.Report(lastWrite: .milliseconds(12), slowestWrite: .milliseconds(340), longestStretch: .milliseconds(1_400),
                                              fenceAfter: .seconds(4))
        #expect(report.text == "last_write_ms 12\nslowest_write_ms 340\nlongest_stretch_ms 1400\nfence_ms 4000\n")
        #expect(LeaseRenewalWatch.Report(text: report.text) == report)
        #expect(LeaseRenewalWatch.Report(text: "last_write_ms 12\nslowest_write_ms 340\n") == nil) // cut short
        #expect(LeaseRenewalWatch.Report(text: report.text.replacingOccurrences(of: "340", with: "x")) == nil)
        #expect(LeaseRenewalWatch.Report(text: "") == nil)
    }
}

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
        let first = watch.completed(startedAt: Self.at(1_000), written: Self.at(1_020), at: Self.at(1_020))
        #expect(first.write == .milliseconds(20) && first.stretch == .milliseconds(1_020))
        // A slow storage: issued at 2.02 s, landed at 4.9 s, on a lease issued at 1 s.
        let slow = watch.completed(startedAt: Self.at(2_020), written: Self.at(4_900), at: Self.at(4_900))
        #expect(slow.write == .milliseconds(2_880) && slow.stretch == .milliseconds(3_900))
        #expect(slow.stretch > watch.warnAfter && first.stretch <= watch.warnAfter)
        let quick = watch.completed(startedAt: Self.at(4_900), written: Self.at(4_910), at: Self.at(4_910))
        #expect(quick.stretch == .milliseconds(2_890)) // from the slow one's issue
        var report = try #require(watch.report)
        #expect(report == .init(lastWrite: .milliseconds(10), slowestWrite: .milliseconds(2_880), longestStretch: .milliseconds(3_900),
                                renewInterval: .seconds(1), fenceAfter: .seconds(4)))
        #expect(report.warnAfter == watch.warnAfter)
        // The write ends at the lease file; the stretch at the end of the look for claims after it.
        let looked = watch.completed(startedAt: Self.at(5_910), written: Self.at(5_930), at: Self.at(6_400))
        #expect(looked.write == .milliseconds(20) && looked.stretch == .milliseconds(1_500))
        // A minute after them the slow one has left the window (and the long silence before
        // this renewal is its own stretch).
        watch.completed(startedAt: Self.at(64_970), written: Self.at(65_000), at: Self.at(65_000))
        report = try #require(watch.report)
        #expect(watch.renewals.map(\.completedAt) == [Self.at(6_400), Self.at(65_000)])
        #expect(report.slowestWrite == .milliseconds(30) && report.longestStretch == .milliseconds(59_090))
    }

    @Test func theReportReadsBackAndABadOneDoesNot() {
        let report = LeaseRenewalWatch.Report(lastWrite: .milliseconds(12), slowestWrite: .milliseconds(340), longestStretch: .milliseconds(1_400),
                                              renewInterval: .seconds(1), fenceAfter: .seconds(4))
        #expect(report.text == "last_write_ms 12\nslowest_write_ms 340\nlongest_stretch_ms 1400\nrenew_ms 1000\nfence_ms 4000\n")
        #expect(LeaseRenewalWatch.Report(text: report.text) == report)
        #expect(LeaseRenewalWatch.Report(text: "last_write_ms 12\nslowest_write_ms 340\n") == nil) // cut short
        #expect(LeaseRenewalWatch.Report(text: report.text.replacingOccurrences(of: "340", with: "x")) == nil)
        #expect(LeaseRenewalWatch.Report(text: "") == nil)
    }
}

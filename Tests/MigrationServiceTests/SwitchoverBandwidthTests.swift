@testable import MigrationService
import Testing

/// The switchover bandwidth fed to QEMU across a distance: the best delivery rate of the last
/// 10 s, read once a second, set again only when it moved by more than a tenth.
@Suite struct SwitchoverBandwidthTests {
    @Test func theBestRecentRateIsSetAndALullDoesNotLowerIt() {
        var feed = SwitchoverBandwidth()
        #expect(!feed.due(at: .zero), "the first reading waits for the stream to carry more than its handshakes")
        #expect(feed.due(at: .seconds(1)))
        #expect(feed.observe(0, at: .seconds(1)) == nil, "nothing delivered yet: QEMU keeps its own estimate")
        #expect(!feed.due(at: .milliseconds(1500)))
        #expect(feed.due(at: .seconds(2)))
        #expect(feed.observe(30_000_000, at: .seconds(2)) == 30_000_000)
        #expect(feed.observe(31_000_000, at: .seconds(2.5)) == nil, "within a tenth: no command")
        #expect(feed.observe(40_000_000, at: .seconds(3)) == 40_000_000)
        // The guest leaves little to send: the rate the kernel sees falls, the path did not.
        for second in 4...12 { #expect(feed.observe(2_000_000, at: .seconds(second)) == nil) }
        #expect(feed.told == 40_000_000)
        // Past the window the lull is all there is: the figure follows it down.
        #expect(feed.observe(2_000_000, at: .seconds(14)) == 2_000_000)
        #expect(feed.told == 2_000_000)
    }

    @Test func aFigureQEMUDidNotTakeIsOfferedAgainAtTheNextReading() {
        var feed = SwitchoverBandwidth()
        #expect(feed.observe(30_000_000, at: .seconds(1)) == 30_000_000)
        // The QMP command failed: the source starts a fresh feed after that reading.
        feed = SwitchoverBandwidth(after: .seconds(1))
        #expect(!feed.due(at: .milliseconds(1500)))
        #expect(feed.due(at: .seconds(2)))
        #expect(feed.observe(30_000_000, at: .seconds(2)) == 30_000_000)
    }
}

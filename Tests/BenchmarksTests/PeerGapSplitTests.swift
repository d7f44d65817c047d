@testable import Benchmarks
import Foundation
import Testing

/// `PeerGapSplit`: a peer's gaps placed before or after QEMU's STOP by the host times their lines
/// appeared, as `bench cross-domain` and `bench network` report them.
struct PeerGapSplitTests {
    let ip = "10.77.0.9"

    func ping(_ at: Double, wgap: Int) -> ConsoleLineClock.Line {
        ConsoleLineClock.Line(at: at, text: "PING \(ip) sent=1 recv=1 lost=0 rtt_us=900 maxgap_ms=\(wgap) judged=0 unanswered=0 late=0 dup=0 wgap_ms=\(wgap) wsendgap_ms=20")
    }

    func gap(_ at: Double, _ ms: Int) -> ConsoleLineClock.Line {
        ConsoleLineClock.Line(at: at, text: "PINGGAP \(ip) gap_ms=\(ms) seq=1")
    }

    /// The session-31 shape: a ~200 ms stall a second before the STOP, the switchover's gap
    /// (downtime + a little) after it, both in `PINGGAP` lines.
    @Test func twoStallsArePlacedOnTheirSideOfTheStop() {
        let lines = [ping(99.5, wgap: 30), ping(100.5, wgap: 25), gap(101.2, 198), ping(101.5, wgap: 198),
                     ping(102.5, wgap: 40), gap(102.65, 131), ping(103.5, wgap: 131), ping(104.5, wgap: 22)]
        let split = PeerGapSplit(lines: lines, ip: ip, requestedAt: 100.9, stopAt: 102.55, downtimeMs: 110)
        #expect(split.switchoverGapMs == 131)
        #expect(split.precopyGapMs == 198)
        #expect(split.precopyGapEndedBeforeStopMs == 1350)
    }

    /// Under 100 ms only `PING` windows tell: one wholly before the STOP counts for pre-copy, one
    /// ending after it for the switchover; the window straddling the request counts for neither.
    @Test func shortGapsComeFromWholeWindows() {
        let lines = [ping(100.0, wgap: 90), ping(101.0, wgap: 35), ping(102.0, wgap: 41), ping(103.0, wgap: 72), ping(104.0, wgap: 20)]
        let split = PeerGapSplit(lines: lines, ip: ip, requestedAt: 100.5, stopAt: 102.4, downtimeMs: 40)
        #expect(split.switchoverGapMs == 72)
        #expect(split.precopyGapMs == 41)
        #expect(split.precopyGapEndedBeforeStopMs == nil)
    }

    /// A window with a long pre-copy gap (placed by its `PINGGAP`) that ends after the STOP does
    /// not lend that gap to the switchover; other pingers' lines are not read.
    @Test func aLongPrecopyGapInTheStopsWindowStaysPrecopys() {
        let lines = [ping(100.0, wgap: 20), gap(100.8, 210), ConsoleLineClock.Line(at: 100.9, text: "PINGGAP 10.77.0.99 gap_ms=900 seq=4"),
                     ping(101.0, wgap: 210), ping(102.0, wgap: 61)]
        // Resumed at 101.05, after that window's line: the switchover's gap is the next window's.
        let split = PeerGapSplit(lines: lines, ip: ip, requestedAt: 100.1, stopAt: 100.95, downtimeMs: 100)
        #expect(split.precopyGapMs == 210)
        #expect(split.switchoverGapMs == 61)
        // Resumed at 100.99, inside that window: its 210 hides the switchover's gap.
        #expect(PeerGapSplit(lines: lines, ip: ip, requestedAt: 100.1, stopAt: 100.95, downtimeMs: 40).switchoverGapMs == nil)
    }

    /// The pre-copy stall and the switchover in the same second: the window's `wgap_ms` is the
    /// stall's, the switchover's shorter gap is hidden in it, and the next window's small figure
    /// must not stand in for it (session 32 read 26 ms against a 60 ms pause that way).
    @Test func aSwitchoverHiddenInThePrecopyStallsWindowIsNotPlaced() {
        let lines = [ping(100.0, wgap: 20), gap(100.3, 220), ping(101.0, wgap: 220), ping(102.0, wgap: 26)]
        let split = PeerGapSplit(lines: lines, ip: ip, requestedAt: 100.05, stopAt: 100.8, downtimeMs: 60)
        #expect(split.precopyGapMs == 220)
        #expect(split.switchoverGapMs == nil)
        // With its own PINGGAP (100 ms or more) after the STOP, it is placed.
        let reported = PeerGapSplit(lines: lines + [gap(100.95, 120)], ip: ip, requestedAt: 100.05, stopAt: 100.8, downtimeMs: 60)
        #expect(reported.switchoverGapMs == 120)
    }

    @Test func nothingPrintedIsNotPlaced() {
        let split = PeerGapSplit(lines: [], ip: ip, requestedAt: 1, stopAt: 2, downtimeMs: 50)
        #expect(split.switchoverGapMs == nil)
        #expect(split.precopyGapMs == nil)
    }

    /// A long pause (seconds, at distance) still owns its gap: the window follows the downtime,
    /// and the short windows after it do not stand in for the gap.
    @Test func aLongDowntimesGapIsPlacedAfterIt() {
        let lines = [ping(100.0, wgap: 20), ping(101.0, wgap: 30), ping(102.0, wgap: 25), gap(105.9, 3700), ping(106.0, wgap: 3700), ping(107.0, wgap: 20)]
        let split = PeerGapSplit(lines: lines, ip: ip, requestedAt: 100.5, stopAt: 102.2, downtimeMs: 3600)
        #expect(split.switchoverGapMs == 3700)
    }

    /// The clock reads the lines a real file gains after it started, with the host's time.
    @Test func clockTimesLinesAppendedToAFile() async throws {
        let path = NSTemporaryDirectory() + "console-line-clock-\(UUID().uuidString).log"
        try "PING old line before the clock started\n".write(toFile: path, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) } // a temporary file
        let clock = ConsoleLineClock(path: path, prefixes: ["PINGGAP "], interval: .milliseconds(2))
        defer { clock.stop() }
        try await Task.sleep(for: .milliseconds(50))
        let before = Date().timeIntervalSince1970
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("HB 1 2\r\nPINGGAP 10.77.0.9 gap_ms=150 seq=7\r\nPINGG".utf8))
        try handle.close()
        for _ in 0..<500 where clock.lines.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        let lines = clock.lines
        #expect(lines.map(\.text) == ["PINGGAP 10.77.0.9 gap_ms=150 seq=7"])
        #expect(lines.allSatisfy { $0.at >= before })
    }
}

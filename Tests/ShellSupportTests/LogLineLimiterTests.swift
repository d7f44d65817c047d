import MeshTime
import ShellSupport
import Testing

/// One line per reason per interval, with the count of the events left unlogged in between.
@Suite struct LogLineLimiterTests {
    @Test func oneLinePerReasonPerIntervalCountingTheSuppressed() {
        var limiter = LogLineLimiter<String>(interval: .seconds(10))
        let start = MeshInstant.origin
        #expect(limiter.record("a", now: start) == 0)
        for i in 1...99 { #expect(limiter.record("a", now: start + .milliseconds(i)) == nil) }
        #expect(limiter.record("b", now: start + .seconds(1)) == 0, "reasons are limited separately")
        #expect(limiter.record("a", now: start + .seconds(10)) == 99, "the next line says how many were left out")
        #expect(limiter.record("a", now: start + .seconds(11)) == nil)
    }
}

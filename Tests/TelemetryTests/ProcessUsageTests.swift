import Foundation
import Prometheus
import Telemetry
import Testing

/// `/proc` parsing for per-VM CPU and memory, and the counter mirror's restart and scale.
struct ProcessUsageTests {
    @Test func parsesStatAfterACommandNameWithSpacesAndParentheses() throws {
        // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime priority nice num_threads …
        let stat = "4242 (qemu (x) 8) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 9 0 5000 1000000 2500 18446744073709551615"
        let status = "Name:\tqemu\nVmPeak:\t  900000 kB\nVmRSS:\t  204800 kB\nThreads:\t9\n"
        let usage = try #require(ProcessUsage.parse(stat: stat, status: status))
        #expect(usage == ProcessUsage(userTicks: 1234, systemTicks: 567, residentBytes: 204_800 * 1024, threads: 9))
        #expect(ProcessUsage.parse(stat: "4242 qemu S 1", status: status) == nil)
        #expect(ProcessUsage.parse(stat: stat, status: "Name:\tqemu\n") == nil) // a kernel thread has no VmRSS
    }

    @Test func readsThisProcess() throws {
        // Burn some CPU so the user time is at least a tick.
        var x: UInt64 = 1
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .milliseconds(50) { x = x &* 6364136223846793005 &+ 1 }
        #expect(x != 0)
        let usage = try #require(ProcessUsage.read(pid: getpid()))
        #expect(usage.userTicks + usage.systemTicks > 0 && usage.threads >= 1 && usage.residentBytes > 1 << 20)
        #expect(ProcessUsage.read(pid: Int32.max) == nil)
    }

    @Test func aRestartedSourceCountsInFullAndScaledTotalsCountInTheirUnit() {
        let registry = PrometheusCollectorRegistry()
        let mirror = CounterMirror(registry: registry)
        mirror.set("test_cpu_seconds_total", [("vm", "web")], to: 5, scale: 0.5, help: "CPU.")
        #expect(registry.emitToString().contains(#"test_cpu_seconds_total{vm="web"} 2.5"#), "\(registry.emitToString())")
        // A new process starts from zero: after restart() its whole total counts on top.
        mirror.restart("test_cpu_seconds_total", [("vm", "web")])
        mirror.set("test_cpu_seconds_total", [("vm", "web")], to: 1, scale: 0.5, help: "CPU.")
        #expect(registry.emitToString().contains(#"test_cpu_seconds_total{vm="web"} 3.0"#), "\(registry.emitToString())")
    }
}

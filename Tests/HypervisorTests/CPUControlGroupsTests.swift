import Foundation
@testable import Hypervisor
import Testing

/// The cgroup cpu controller (Protocol.md §12.9): found from the mounts, and enforcing a limit
/// on a real process.
@Suite struct CPUControlGroupsTests {
    @Test func findsV1CpuThenV2AndSaysWhatIsMissing() throws {
        let v1 = "cgroup /sys/fs/cgroup/cpuacct cgroup rw,cpuacct 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
        let groups = try CPUControlGroups.detect(agent: "node a", mounts: v1, membership: "4:memory:/x\n1:cpu:/agents/one\n0::/\n")
        #expect(groups.version == .v1)
        #expect(groups.root == "/sys/fs/cgroup/cpu/agents/one/hostmesh-node_a")
        #expect(groups.directory(vm: "id1", pool: "web") == "/sys/fs/cgroup/cpu/agents/one/hostmesh-node_a/pool-web/vm-id1")
        // cpuacct or cpuset alone is not the cpu controller, and nothing else either: the error says so.
        #expect(throws: ResourceControlError.self) {
            try CPUControlGroups.detect(agent: "a", mounts: "cgroup /sys/fs/cgroup/cpuset cgroup rw,cpuset 0 0\n", membership: "")
        }
        do { _ = try CPUControlGroups.detect(agent: "a", mounts: "proc /proc proc rw 0 0\n", membership: "") } catch {
            #expect(error.description.contains("no cgroup cpu controller is mounted"))
        }
        // v2 whose controllers (here: a directory that does not exist) lack cpu: refused, naming the directory.
        do { _ = try CPUControlGroups.detect(agent: "a", mounts: "cgroup2 /nonexistent/cg cgroup2 rw 0 0\n", membership: "0::/svc\n") } catch {
            #expect(error.description.contains("/nonexistent/cg/svc"))
        }
    }

    /// A shell busy loop limited to a tenth of a core: the kernel throttles it, and its CPU time
    /// stays near a tenth of the time it ran (a generous margin; no assertion on wall time).
    @Test(.enabled(if: getuid() == 0 && (try? CPUControlGroups.detect(agent: "t")) != nil, "needs root and a cgroup cpu controller"))
    func aLimitCapsARealProcess() async throws {
        let groups = try CPUControlGroups.detect(agent: "hypervisor-test-\(getpid())")
        let loop = Process()
        loop.executableURL = URL(fileURLWithPath: "/bin/sh")
        loop.arguments = ["-c", "while :; do :; done"]
        try loop.run()
        defer {
            loop.terminate()
            loop.waitUntilExit()
            groups.remove(vm: "loop", pool: "p")
            _ = rmdir(groups.directory(pool: "p"))
            _ = rmdir(groups.root)
        }
        try groups.configurePool("p", limitMilli: nil, shares: 1000)
        try groups.place(pid: loop.processIdentifier, vm: "loop", pool: "p", limitMilli: 100, shares: 1000)
        let start = (cpu: Self.cpuSeconds(loop.processIdentifier)!, at: ContinuousClock.now)
        try await Task.sleep(for: .seconds(2))
        let used = Self.cpuSeconds(loop.processIdentifier)! - start.cpu
        let elapsed = (ContinuousClock.now - start.at).inSecondsForTest
        let throttling = try #require(groups.throttling(vm: "loop", pool: "p"))
        #expect(throttling.throttled > 0, "the kernel never throttled the loop: \(throttling)")
        // Unlimited it would use about 1 s per second; limited, about 0.1.
        #expect(used < 0.3 * elapsed, "the loop used \(used) s of CPU in \(elapsed) s under a 0.1-core limit")
    }

    /// utime + stime of a process, seconds.
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

extension Duration {
    var inSecondsForTest: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

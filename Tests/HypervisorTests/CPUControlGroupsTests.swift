import Foundation
@testable import Hypervisor
import Testing

/// The cgroup cpu controller (Protocol.md §10.9): found from the mounts, and enforcing a limit
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
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup("while :; do :; done"), nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ) == 0)
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            groups.remove(vm: "loop", pool: "p")
            _ = rmdir(groups.directory(pool: "p"))
            _ = rmdir(groups.root)
        }
        try groups.configurePool("p", limitMilli: nil, shares: 1000)
        try groups.place(pid: pid, vm: "loop", pool: "p", limitMilli: 100, shares: 1000)
        let start = (cpu: Self.cpuSeconds(pid)!, at: ContinuousClock.now)
        try await Task.sleep(for: .seconds(2))
        let used = Self.cpuSeconds(pid)! - start.cpu
        let elapsed = (ContinuousClock.now - start.at).inSecondsForTest
        let throttling = try #require(groups.throttling(vm: "loop", pool: "p"))
        // The group has the quota (10 ms of each 100 ms), and the process is in it.
        let group = groups.directory(vm: "loop", pool: "p")
        let quota = (try? String(contentsOfFile: group + "/cpu.cfs_quota_us", encoding: .utf8)) ?? (try? String(contentsOfFile: group + "/cpu.max", encoding: .utf8)) ?? ""
        #expect(quota.hasPrefix("10000"), "the group's quota is \(quota)")
        #expect(((try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? "").contains("/pool-p/vm-loop"))
        // Unlimited it would use about 1 s per second; limited, about 0.1.
        #expect(used < 0.3 * elapsed, "the loop used \(used) s of CPU in \(elapsed) s under a 0.1-core limit")
        // Where it got near its cap, the kernel throttled it (a machine loaded by other work may give it less than the cap anyway).
        if used > 0.075 * elapsed { #expect(throttling.throttled > 0, "the loop used \(used) s in \(elapsed) s and was never throttled: \(throttling)") }
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

import Foundation
@testable import Hypervisor
import Testing

/// The cgroup memory controller (Protocol.md §10.11): found from the mounts, the files a limit
/// and a reservation become, and a limit enforced on a real process.
@Suite struct MemoryControlGroupsTests {
    @Test func findsV1MemoryThenV2AndSaysWhatIsMissing() throws {
        let v1 = "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"
        let groups = try MemoryControlGroups.detect(agent: "node a", mounts: v1, membership: "4:memory:/agents/one\n1:cpu:/x\n0::/\n")
        #expect(groups.version == .v1)
        #expect(groups.directory(vm: "id1") == "/sys/fs/cgroup/memory/agents/one/hostmesh-node_a/vm-id1")
        do { _ = try MemoryControlGroups.detect(agent: "a", mounts: "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n", membership: "") } catch {
            #expect(error.description.contains("no cgroup memory controller is mounted"))
        }
        do { _ = try MemoryControlGroups.detect(agent: "a", mounts: "cgroup2 /nonexistent/cg cgroup2 rw 0 0\n", membership: "0::/svc\n") } catch {
            #expect(error.description.contains("memory controller is not available in /nonexistent/cg/svc"))
        }
    }

    @Test func aLimitCapsTheGuestPlusQEMUsOwnAndAReservationIsProtected() {
        let overhead = MemoryControlGroups.overheadMiB
        let v1 = MemoryControlGroups(version: .v1, root: "/r")
        #expect(v1.settings(memoryMiB: 256, limitMiB: 128, reservationMiB: 64).map { "\($0.file)=\($0.value)" }
            == ["memory.limit_in_bytes=\((128 + overhead) << 20)", "memory.soft_limit_in_bytes=\(64 << 20)"])
        // A limit above the RAM caps at the RAM; none: unlimited.
        #expect(v1.settings(memoryMiB: 256, limitMiB: 999, reservationMiB: 0).map(\.value) == ["\((256 + overhead) << 20)", "-1"])
        let v2 = MemoryControlGroups(version: .v2, root: "/r")
        #expect(v2.settings(memoryMiB: 256, limitMiB: nil, reservationMiB: 32).map { "\($0.file)=\($0.value)" }
            == ["memory.max=max", "memory.min=\(32 << 20)"])
    }

    /// A process that touches more than its group allows is killed by the kernel; one within it runs.
    @Test(.enabled(if: getuid() == 0 && (try? MemoryControlGroups.detect(agent: "t")) != nil && FileManager.default.fileExists(atPath: "/usr/bin/python3"),
                   "needs root, a cgroup memory controller and python3"))
    func aLimitIsEnforcedOnARealProcess() async throws {
        let groups = try MemoryControlGroups.detect(agent: "hypervisor-test-\(getpid())")
        defer { _ = rmdir(groups.root) }
        // Limit 16 MiB: the group allows 16 + overhead MiB.
        let allowed = 16 + MemoryControlGroups.overheadMiB
        for (name, touchMiB, survives) in [("over", allowed + 120, false), ("under", allowed - 120, true)] {
            let script = "import time\nx = b'x' * (\(touchMiB) << 20)\ntime.sleep(2)\n"
            var pid: pid_t = 0
            // Stopped until it is in its group, so that everything it touches is charged there.
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup("kill -STOP $$; exec /usr/bin/python3 -c \"$0\""), strdup(script), nil]
            defer { argv.forEach { free($0) } }
            #expect(posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ) == 0)
            var status: Int32 = 0
            // Wait for the shell to stop itself.
            #expect(waitpid(pid, &status, WUNTRACED) == pid)
            try groups.place(pid: pid, vm: name, memoryMiB: 64, limitMiB: 16, reservationMiB: 8)
            let limit = (try? String(contentsOfFile: groups.directory(vm: name) + "/memory.limit_in_bytes", encoding: .utf8))
                ?? (try? String(contentsOfFile: groups.directory(vm: name) + "/memory.max", encoding: .utf8)) ?? ""
            #expect(limit.trimmingCharacters(in: .whitespacesAndNewlines) == "\(allowed << 20)")
            kill(pid, SIGCONT)
            // Blocking wait on a thread of its own: the cooperative pool must not block.
            let exit = await Task.detached { () -> Int32 in
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                return status
            }.value
            let killed = (exit & 0x7f) == SIGKILL
            #expect(killed == !survives, "\(name): wait status \(exit)")
            groups.remove(vm: name)
        }
    }
}

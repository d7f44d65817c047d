import Agent
import ControlAPI
import Foundation
import Hypervisor
import Placement
import Testing

/// Resource pools with a real agent, real QEMU and the test guest (Protocol.md §10.9): a pool's
/// CPU limit caps a guest that burns CPU (through the cgroup cpu controller), a reservation that
/// does not fit is refused, and meaningless pools and allocations are refused with the reason.
@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: TestGuest.available && getuid() == 0, "needs root and the test guest (make guest)"))
struct ResourcePoolEndToEndTests {
    static func spec(_ name: String, hot: Bool = false, resources: VMSpec.Resources? = nil) -> VMSpec {
        var spec = DRSEndToEndTests.spec(name, hot: hot)
        spec.resources = resources
        return spec
    }

    /// The control error a call fails with (nil: it succeeded).
    static func refusal<P: Encodable & Sendable>(_ agent: AgentProcess, _ method: String, _ params: P) async -> ControlError? {
        do {
            _ = try await agent.control.call(method, params, as: AnyAnswer.self)
            return nil
        } catch let error as ControlError { return error } catch { return ControlError.failed("\(error)") }
    }

    /// Any successful answer (only the refusals are looked at).
    struct AnyAnswer: Decodable { init(from decoder: any Decoder) throws {} }

    /// utime + stime of a process, seconds (from /proc/<pid>/stat).
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The cpu controller's group of a process and that group's `cpu.stat`, from /proc/<pid>/cgroup.
    static func cpuGroup(of pid: Int32) -> (path: String, stat: [String: Int], quota: String?)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            let directory: String
            if f[1].split(separator: ",").contains("cpu") { directory = "/sys/fs/cgroup/cpu" + f[2] }
            else if f[0] == "0", f[1].isEmpty, !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpu") { directory = "/sys/fs/cgroup" + f[2] }
            else { continue }
            var stat: [String: Int] = [:]
            for row in ((try? String(contentsOfFile: directory + "/cpu.stat", encoding: .utf8)) ?? "").split(separator: "\n") {
                let kv = row.split(separator: " ")
                if kv.count == 2, let n = Int(kv[1]) { stat[String(kv[0])] = n }
            }
            let quota = (try? String(contentsOfFile: directory + "/cpu.cfs_quota_us", encoding: .utf8))
                ?? (try? String(contentsOfFile: directory + "/cpu.max", encoding: .utf8))
            return (String(f[2]), stat, quota?.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return nil
    }

    @Test func aPoolLimitCapsABurningGuestReservationsAreAdmittedAndBadInputIsRefused() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: DRSEndToEndTests.drs)

        // Bad input, each refused with its reason.
        let below = await Self.refusal(a, "pool.create", PoolTypes.Change(name: "bad", cpuReservation: 800, cpuLimit: 400))
        #expect(below?.code == "bad_request" && below?.message.contains("below its reservation") == true, "\(String(describing: below))")
        let hostCPU = ProcessInfo.processInfo.activeProcessorCount * 1000
        _ = try await a.control.call("pool.create", PoolTypes.Change(name: "capped", cpuLimit: 200), as: ControlTypes.Text.self)
        let duplicate = await Self.refusal(a, "pool.create", PoolTypes.Change(name: "capped"))
        #expect(duplicate?.code == "conflict")
        try await DRSEndToEndTests.waitUntil(10, "the agent's own load report") {
            try await a.control.call("drs.status", Empty(), as: DRSTypes.Status.self).hosts.first?.state == "available"
        }
        let unknown = await Self.refusal(a, "vm.create", ControlTypes.CreateVM(spec: Self.spec("lost", resources: VMSpec.Resources(pool: "nosuch")), start: false))
        #expect(unknown?.code == "bad_request" && unknown?.message.contains("no resource pool named nosuch") == true, "\(String(describing: unknown))")
        let huge = await Self.refusal(a, "vm.create", ControlTypes.CreateVM(
            spec: Self.spec("huge", resources: VMSpec.Resources(cpu: VMSpec.Allocation(reservation: hostCPU + 1000))), start: false))
        #expect(huge?.code == "bad_request" && huge?.message.contains("more than any host has") == true, "\(String(describing: huge))")

        // A guest burning CPU in a pool limited to a fifth of a core.
        let hot = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("hot", hot: true, resources: VMSpec.Resources(pool: "capped")), start: true),
                                           as: VMInfo.self)
        let pid = try #require(hot.pid)
        let group = try #require(Self.cpuGroup(of: pid))
        #expect(group.path.hasSuffix("/pool-capped/vm-\(hot.id)"), "QEMU is in \(group.path)")
        try await Task.sleep(for: .seconds(2)) // the guest boots, and burns
        let before = (cpu: try #require(Self.cpuSeconds(pid)), at: ContinuousClock.now)
        try await Task.sleep(for: .seconds(4))
        let used = try #require(Self.cpuSeconds(pid)) - before.cpu
        let elapsed = ContinuousClock.now - before.at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        // The pool's group (one level up) is what the kernel throttles: its limit holds every VM of the pool here.
        let poolStat = try #require(Self.cpuGroup(of: pid).map { URL(fileURLWithPath: "/sys/fs/cgroup/cpu" + $0.path).deletingLastPathComponent().path })
        let throttled = ((try? String(contentsOfFile: poolStat + "/cpu.stat", encoding: .utf8)) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("nr_throttled ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        // The pool's group has the quota (a fifth of each 100 ms period), and every QEMU thread is in the VM's group below it.
        let quota = (try? String(contentsOfFile: poolStat + "/cpu.cfs_quota_us", encoding: .utf8)) ?? (try? String(contentsOfFile: poolStat + "/cpu.max", encoding: .utf8)) ?? ""
        #expect(quota.hasPrefix("20000"), "the pool's group has quota \(quota)")
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        for tid in threads {
            let membership = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/cgroup", encoding: .utf8)) ?? ""
            #expect(membership.contains("/pool-capped/vm-\(hot.id)"), "QEMU thread \(tid) is not in the VM's group: \(membership)")
        }
        // TCG burning freely takes a whole core; capped at 0.2 of one, with a generous margin.
        #expect(used < 0.45 * seconds, "QEMU used \(used) s of CPU in \(seconds) s under a 0.2-core pool limit")
        // Where QEMU got near its cap, the kernel throttled it (on a machine loaded by other work it may get less than the cap anyway).
        if used > 0.15 * seconds { #expect(throttled > 0, "QEMU used \(used) s in \(seconds) s and the kernel never throttled \(poolStat)") }
        print("pool limit 0.2 core: QEMU used \(String(format: "%.2f", used)) s of CPU in \(String(format: "%.2f", seconds)) s, \(throttled) periods throttled")
        // The limit is the pool's: raised, it applies at once to the running VM's pool group.
        _ = try await a.control.call("pool.set", PoolTypes.Change(name: "capped", cpuLimit: 0), as: ControlTypes.Text.self)
        try await DRSEndToEndTests.waitUntil(10, "the pool's limit lifted on the host") {
            let quota = (try? String(contentsOfFile: poolStat + "/cpu.cfs_quota_us", encoding: .utf8)) ?? (try? String(contentsOfFile: poolStat + "/cpu.max", encoding: .utf8)) ?? ""
            return quota.hasPrefix("-1") || quota.hasPrefix("max")
        }
        // A pool with a VM is not removed.
        let inUse = await Self.refusal(a, "pool.remove", PoolTypes.Remove(name: "capped"))
        #expect(inUse?.code == "conflict" && inUse?.message.contains("hot") == true, "\(String(describing: inUse))")

        // Reservations: two VMs each reserving 60% of the host cannot both run here.
        let share = hostCPU * 6 / 10
        let first = try await a.control.call("vm.create", ControlTypes.CreateVM(
            spec: Self.spec("r1", resources: VMSpec.Resources(cpu: VMSpec.Allocation(reservation: share))), start: true), as: VMInfo.self)
        #expect(first.pid != nil)
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(
            spec: Self.spec("r2", resources: VMSpec.Resources(cpu: VMSpec.Allocation(reservation: share))), start: false), as: VMInfo.self)
        let refused = await Self.refusal(a, "vm.start", ControlTypes.VMReference(vm: "r2"))
        #expect(refused?.code == "conflict" && refused?.message.contains("unreserved") == true, "\(String(describing: refused))")
        // Placement knows it too: with r1's reservation reported, no host of this mesh can take r2's twin.
        try await DRSEndToEndTests.waitUntil(10, "r1's reservation in the view") {
            try await a.control.call("drs.vms", Empty(), as: [DRSTypes.MeshVM].self).contains { $0.name == "r1" }
        }
        let placed = await Self.refusal(a, "vm.place", DRSTypes.Place(create: ControlTypes.CreateVM(
            spec: Self.spec("r3", resources: VMSpec.Resources(cpu: VMSpec.Allocation(reservation: share))), start: false)))
        #expect(placed?.code == "unavailable" && placed?.message.contains("unreserved") == true, "\(String(describing: placed))")
        // A pool's limit may not fall below what its VMs already reserve.
        _ = try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "hot"), as: VMInfo.self)
        _ = try await a.control.call("pool.create", PoolTypes.Change(name: "small"), as: ControlTypes.Text.self)
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(
            spec: Self.spec("member", resources: VMSpec.Resources(pool: "small", cpu: VMSpec.Allocation(reservation: 300))), start: true), as: VMInfo.self)
        try await DRSEndToEndTests.waitUntil(10, "member in the view") {
            try await a.control.call("pool.list", Empty(), as: [PoolTypes.Row].self).first { $0.pool.name == "small" }?.vms == ["member"]
        }
        let tooLow = await Self.refusal(a, "pool.set", PoolTypes.Change(name: "small", cpuLimit: 100))
        #expect(tooLow?.code == "bad_request" && tooLow?.message.contains("below what its VMs already reserve") == true, "\(String(describing: tooLow))")
    }
}

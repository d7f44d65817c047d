import Agent
import ControlAPI
import Foundation
import Hypervisor
import Placement
import Synchronization
import Testing

/// `vm start --place auto` with real agents and real QEMU (Protocol.md §10.10): a VM defined on
/// one host, started from another, runs where placement says, handed over at the next epoch;
/// a VM no host may take stays where it is, with every host's reason; the memory limit and
/// reservation it carries are enforced by its QEMU's memory cgroup where it runs (§10.11).
@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: TestGuest.available && getuid() == 0, "needs root and the test guest (make guest)"))
struct PlacedStartTests {
    @Test func aVMDefinedOnOneHostStartsOnTheBestHostAtTheNextEpochAndARefusalNamesEveryHost() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: DRSEndToEndTests.drs)
        // node-a's events: the placement it decides is published there (`hostmesh events`).
        // In place once its first line, `subscribed`, came.
        let seen = Mutex<[AgentEvent]>([])
        struct Line: Decodable { var progress: AgentEvent }
        let subscriber = Task {
            _ = try? await a.control.call("events", Empty(), as: Empty.self) { line in // the stream ends when the test cancels it
                if let event = try? JSONDecoder().decode(Line.self, from: line).progress { seen.withLock { $0.append(event) } } // other lines: not events
            }
        }
        defer { subscriber.cancel() }
        try await DRSEndToEndTests.waitUntil(30, "node-a's events subscription in place") {
            seen.withLock { $0.first?.kind == "subscribed" }
        }
        let b = try await mesh.start("node-b", arguments: ["--join", a.address] + DRSEndToEndTests.drs)
        // 96 MiB of RAM, at most 64 of them, 32 reserved; a core reserved. "pinned" reserves 1.5
        // cores: beside "roamer", no host of 2 cores has room for it.
        let roamer = ResourcePoolEndToEndTests.spec("roamer", resources: VMSpec.Resources(cpu: VMSpec.Allocation(reservation: 1000),
                                                                                          memory: VMSpec.Allocation(reservation: 32, limit: 64)))
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: roamer, start: false), as: VMInfo.self)
        let pinnedSpec = ResourcePoolEndToEndTests.spec("pinned", resources: VMSpec.Resources(cpu: VMSpec.Allocation(reservation: 1500)))
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: pinnedSpec, start: false), as: VMInfo.self)
        try await DRSEndToEndTests.waitUntil(30, "b to know a") {
            try await b.control.call("drs.status", Empty(), as: DRSTypes.Status.self).hosts.count == 2
        }
        // node-a goes into maintenance (it has no running VM, so it is ready at once) and
        // "pinned" may only run on node-a: no host may start it now.
        _ = try await b.control.call("host.maintenance", DRSTypes.Maintenance(action: .enter, host: "node-a"), as: DRSTypes.MaintenanceStatus.self)
        let pin = PlacementRule(name: "pin", kind: .runOn, vms: ["pinned"], hosts: ["node-a"], must: true)
        _ = try await b.control.call("rule.add", DRSTypes.AddRule(rule: pin, allowUnknownVMs: true), as: ControlTypes.Text.self)
        try await DRSEndToEndTests.waitUntil(30, "a and b to see node-a in maintenance, node-b available and the rule") {
            for agent in [a, b] {
                let status = try await agent.control.call("drs.status", Empty(), as: DRSTypes.Status.self)
                let states = Dictionary(uniqueKeysWithValues: status.hosts.map { ($0.host, $0.state) })
                guard states == ["node-a": "evacuating", "node-b": "available"],
                      try await agent.control.call("rule.list", Empty(), as: [DRSTypes.RuleRow].self).count == 1 else { return false }
            }
            return true
        }

        // Started from node-b, "roamer" (defined on node-a) runs on node-b, at epoch 2.
        let placed = try await b.control.call("vm.startPlaced", ControlTypes.VMReference(vm: "roamer"), as: DRSTypes.Placed.self)
        #expect(placed.host == "node-b" && placed.info.state == "running" && placed.info.epoch == 2, "\(placed)")
        #expect(placed.reason?.contains("node-a: in maintenance") == true, "\(placed.reason ?? "no reason")")
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == [])
        let onB = try await b.control.call("vm.list", Empty(), as: [VMInfo].self)
        #expect(onB.first { $0.name == "roamer" }.map { $0.state == "running" && $0.epoch == 2 } == true, "\(onB)")
        try await DRSEndToEndTests.waitUntil(10, "node-a's drs.placed event") {
            seen.withLock { $0.contains { $0.kind == "drs.placed" && $0.peer == "node-b" && $0.vm == "roamer" && $0.host == "node-a" } }
        }
        // Its QEMU on node-b is in its memory group: the limit caps the guest plus QEMU's own, the reservation is protected.
        let pid = try #require(placed.info.pid)
        let group = try #require(Self.memoryGroup(of: pid), "roamer's QEMU is in no memory cgroup")
        #expect(group.path.hasSuffix("/vm-\(roamer.id)"), "\(group.path)")
        #expect(group.files["memory.limit_in_bytes"] ?? group.files["memory.max"] == "\((64 + MemoryControlGroups.overheadMiB) << 20)", "\(group)")
        #expect(group.files["memory.soft_limit_in_bytes"] ?? group.files["memory.min"] == "\(32 << 20)", "\(group)")
        // node-a no longer has it: a second placed start finds it on node-b, where it already runs.
        await #expect { _ = try await a.control.call("vm.startPlaced", ControlTypes.VMReference(vm: "roamer"), as: DRSTypes.Placed.self) }
            throws: { "\($0)".contains("already runs, on the host that defines it") }

        // "pinned" fits nowhere: the refusal names each host's reason, and the VM stays on
        // node-b, stopped, not held, at its epoch.
        await #expect { _ = try await a.control.call("vm.startPlaced", ControlTypes.VMReference(vm: "pinned"), as: DRSTypes.Placed.self) }
            throws: { "\($0)".contains("node-a: in maintenance")
                && ("\($0)".contains("node-b: would break must rule pin") || "\($0)".contains("node-b: 1000 thousandths of a core unreserved, the VM reserves 1500")) }
        let pinned = try await b.control.call("vm.show", ControlTypes.VMReference(vm: "pinned"), as: VMDetails.self).info
        #expect(pinned.state == "stopped" && pinned.epoch == 1 && pinned.problem == nil, "\(pinned)")
        await #expect { _ = try await b.control.call("vm.startPlaced", ControlTypes.VMReference(vm: "ghost"), as: DRSTypes.Placed.self) }
            throws: { "\($0)".contains("no host of the mesh defines") }

        // Out of maintenance, the rule sends it to node-a: handed over the other way.
        _ = try await a.control.call("host.maintenance", DRSTypes.Maintenance(action: .exit, host: "node-a"), as: DRSTypes.MaintenanceStatus.self)
        try await DRSEndToEndTests.waitUntil(30, "b to see node-a available") {
            try await b.control.call("drs.status", Empty(), as: DRSTypes.Status.self).hosts.allSatisfy { $0.state == "available" }
        }
        let back = try await b.control.call("vm.startPlaced", ControlTypes.VMReference(vm: "pinned"), as: DRSTypes.Placed.self)
        #expect(back.host == "node-a" && back.info.state == "running" && back.info.epoch == 2, "\(back)")
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == ["roamer"])
        // Each VM runs once in the mesh.
        #expect(try await DRSEndToEndTests.placement([a, b]) == ["roamer": "node-b", "pinned": "node-a"])
        // Without the rule, `migrate --auto` still finds no host: node-b has a core unreserved, "pinned" reserves 1.5.
        _ = try await a.control.call("rule.remove", DRSTypes.RemoveRule(name: "pin"), as: ControlTypes.Text.self)
        try await DRSEndToEndTests.waitForVMs(a, 2)
        await #expect { _ = try await a.control.call("migrate", ControlTypes.Migrate(vm: "pinned", to: .auto, settings: MigrationSettings()), as: MigrationReport.self) }
            throws: { "\($0)".contains("node-b: 1000 thousandths of a core unreserved, the VM reserves 1500") }
    }

    /// The memory controller's group of a process and its limit files, from /proc/<pid>/cgroup.
    static func memoryGroup(of pid: Int32) -> (path: String, files: [String: String])? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            let directory: String
            if f[1].split(separator: ",").contains("memory") { directory = "/sys/fs/cgroup/memory" + f[2] }
            else if f[0] == "0", f[1].isEmpty, !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory") { directory = "/sys/fs/cgroup" + f[2] }
            else { continue }
            var files: [String: String] = [:]
            for name in ["memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.max", "memory.min"] {
                if let value = try? String(contentsOfFile: directory + "/" + name, encoding: .utf8) { files[name] = value.trimmingCharacters(in: .whitespacesAndNewlines) }
            }
            return (String(f[2]), files)
        }
        return nil
    }
}

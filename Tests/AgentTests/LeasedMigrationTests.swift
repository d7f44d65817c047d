@testable import Agent
import ControlAPI
import Foundation
import HA
import Hypervisor
import Testing

/// A leased VM live-migrates, and its lease moves with the ownership (issue 20, Protocol.md
/// §9.2 "Leases and handovers"), with real agents, QEMU and the test guest writing its disk log
/// on a shared directory:
/// - the destination's keeper holds its own lease (`incoming`, epoch 2) before its QEMU starts,
///   and QEMU is that keeper's child (watched by it, killed with it); at the commit the lease
///   turns `held`, and only then does the source release its own (`released`); the spec file
///   beside the lease names the new owner;
/// - the guest goes on writing its disk (same boot, no record lost);
/// - the new owner then dies with its QEMUs: the VM comes back once on one of the two others,
///   at 2 + 2 = 4, every acknowledged record intact, never two copies in 100 ms samples.
@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct LeasedMigrationTests {
    @Test func aLeasedVMMigratesWithItsLeaseAndComesBackElsewhereWhenItsNewOwnerDies() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let shared = try TakeoverTests.sharedDirectory(mesh)
        let a = try await mesh.start("node-a", arguments: TakeoverTests.leases)
        let b = try await mesh.start("node-b", arguments: ["--join", a.address] + TakeoverTests.leases)
        let c = try await mesh.start("node-c", arguments: ["--join", a.address] + TakeoverTests.leases)
        let spec = try TakeoverTests.spec("ha-m", shared: shared)
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec, start: true), as: VMInfo.self)
        let onA = TakeoverTests.console(a, spec.id)
        let first = try await awaitValue(60, "the disk log never got going: \(onA().suffix(800))\n--- node-a's log:\n\(a.log.suffix(3000))") {
            DiskLog.lastRecord(onA()).flatMap { $0.n >= 10 ? $0 : nil }
        }
        let files = LeaseFiles(directory: shared + "/.hostmesh")
        let sourceKeeper = try #require(VMManager.leaseKeeperPid(spec.id, runtime: a.stateDirectory + "/vms/" + spec.id))

        // The move: the lease goes with it.
        let report: MigrationReport
        do {
            report = try await a.control.call("migrate", ControlTypes.Migrate(vm: "ha-m", to: .address(try HostPort(parsing: b.address)), settings: MigrationSettings()),
                                              as: MigrationReport.self)
        } catch {
            // A source fenced mid-migration (its lease renewals stalled) says so in its log.
            throw ControlError.failed("\(error)\n--- node-a's log:\n\(a.log.suffix(4000))")
        }
        let runtimeB = b.stateDirectory + "/vms/" + spec.id
        let info = try await b.control.call("vm.show", ControlTypes.VMReference(vm: "ha-m"), as: VMDetails.self).info
        #expect(info.state == "running" && info.epoch == 2, "\(info)")
        let leases = try files.leases(vm: spec.id)
        #expect(leases.map(\.owner) == ["node-a", "node-b"], "\(leases)")
        #expect(leases.first { $0.owner == "node-a" }.map { !$0.held } == true, "the source did not release its lease: \(leases)")
        let leaseB = try #require(leases.first { $0.owner == "node-b" })
        #expect(leaseB.held && !leaseB.incoming && leaseB.epoch == 2, "\(leaseB)")
        #expect(LeaseKeeper.state(runtimeDirectory: runtimeB) == "held")
        _ = try await awaitValue(15, "the source's keeper or copy runs on") {
            ProcessProbe.startTime(sourceKeeper) == nil && pids(ofProcessesMentioning: a.stateDirectory + "/vms/").isEmpty ? true : nil
        }
        let specFile = try files.readSpec(vm: spec.id)
        #expect(specFile.owner == "node-b" && specFile.epoch == 2, "spec file: \(specFile.owner) at \(specFile.epoch)")
        // The copy that arrived is its keeper's child, watched by it.
        let keeperB = try #require(VMManager.leaseKeeperPid(spec.id, runtime: runtimeB))
        let qemuB = try #require(info.pid)
        #expect(LeaseFenceTests().parent(of: qemuB) == keeperB, "QEMU on node-b is not its keeper's child")
        // It renews, and the guest writes on (same boot).
        #expect(try await awaitValue(10, "node-b's lease is not renewed") {
            (try files.read(vm: spec.id, host: "node-b")?.counter ?? 0) > leaseB.counter + 3 ? true : nil
        })
        let onB = TakeoverTests.console(b, spec.id)
        _ = try await awaitValue(30, "the guest stopped writing after the move") {
            (DiskLog.records(onB(), boot: first.boot).last ?? 0) > first.n + 20 ? true : nil
        }
        print("leased migration: total \(report.totalMs) ms, downtime \(report.downtimeMs) ms; node-b holds the lease at epoch 2, node-a's released")

        // The others know the new owner (the source from its release, the third host by gossip).
        for survivor in [a, c] {
            _ = try await awaitValue(30, "\(survivor.hostID) never learned that node-b owns the VM") {
                let known = try await survivor.control.call("ownership", Empty(), as: [ControlTypes.Ownership].self)
                return known.contains(ControlTypes.Ownership(vm: spec.id, owner: "node-b", epoch: 2)) ? true : nil
            }
        }

        // The new owner dies with its QEMU and keeper: the VM comes back once, above both leases.
        b.kill()
        killProcesses(mentioning: b.stateDirectory + "/")
        let acknowledged = DiskLog.records(onB(), boot: first.boot)
        var placed: (AgentProcess, VMInfo)?
        let deadline = ContinuousClock.now + .seconds(90)
        while placed == nil, ContinuousClock.now < deadline {
            let copies = try await TakeoverTests.running("ha-m", on: [a, c])
            #expect(copies.count <= 1, "runs on \(copies.map(\.0.hostID))")
            placed = copies.first
            try await Task.sleep(for: .milliseconds(100))
        }
        let (host, taken) = try #require(placed, "not taken over\na: \(a.log.suffix(2500))\nc: \(c.log.suffix(2500))")
        #expect(taken.epoch == 4 && taken.restarts?.lastReason == "taken over from node-b: its lease expired", "\(taken)")
        let newBoot = try await TakeoverTests.nextBoot(after: first.boot, console: TakeoverTests.console(host, spec.id))
        let image = try [UInt8](Data(contentsOf: URL(fileURLWithPath: spec.disks[0].path)))
        let last = try #require(acknowledged.last)
        let damaged = (max(1, last - first.blocks + 1)...last).filter {
            !TakeoverTests.holdsRecordOrNewBoot(image, $0, boot: first.boot, newBoot: newBoot, blocks: first.blocks)
        }
        #expect(damaged.isEmpty, "acknowledged records lost: \(damaged.prefix(10))")
        try await Task.sleep(for: .seconds(3))
        #expect(try await TakeoverTests.running("ha-m", on: [a, c]).map(\.0.hostID) == [host.hostID], "a second takeover")
    }
}

@testable import Agent
import ControlAPI
import Foundation
import HA
import Hypervisor
import Testing

/// Partitions (issue 20 item 3, Protocol.md §9.2) made with real network namespaces: two lab
/// hosts on a bridge, the lab's shared directory as their shared storage, the test guest writing
/// its disk log on an image there.
/// - Cut from the mesh: node-a's cable is pulled (its veth down: gossip, channels and overlay all
///   dropped both ways) while its keeper still writes its lease. node-b finds it dead yet restarts
///   nothing; node-a's guest keeps running and writing.
/// - Cut from the storage: node-a is plugged back in, then its lease directory is made read-only
///   for node-a's processes alone (a read-only bind mount in its mount namespace: its lease
///   writes fail, its QEMU's open image does not). It kills its copy, and only then does node-b
///   start the VM; sampled every 50 ms, never both; the disk log shows every record either copy
///   acknowledged intact (a late write of the old copy over the new one's would tear one).
@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: Lab.available && TestGuest.available, "needs root, iproute2 and the test guest (make guest)"))
struct LabPartitionTests {
    @Test func aHostUnpluggedFromTheMeshKeepsItsVMAndOneCutFromTheStorageLosesItToAnother() async throws {
        let lab = try Lab(hosts: 2)
        let mesh = try TestMesh(lab: lab)
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", on: 1, arguments: TakeoverTests.leases)
        let b = try await mesh.start("node-b", on: 2, arguments: ["--join", a.address] + TakeoverTests.leases)
        let spec = try TakeoverTests.spec("ha-lab", shared: lab.shared)
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec, start: true), as: VMInfo.self)
        let console = TakeoverTests.console(a, spec.id)
        let first = try await awaitValue(60, "the disk log never got going: \(console().suffix(800))\n--- node-a's log:\n\(a.log.suffix(3000))") {
            DiskLog.lastRecord(console()).flatMap { $0.n >= 10 ? $0 : nil }
        }
        _ = try await awaitValue(30, "node-b never heard of the VM") {
            try await b.control.call("ownership", Empty(), as: [ControlTypes.Ownership].self).contains { $0.vm == spec.id && $0.owner == "node-a" } ? true : nil
        }
        let qemu = try #require(try await a.control.call("vm.show", ControlTypes.VMReference(vm: "ha-lab"), as: VMDetails.self).info.pid)
        let leaseDirectory = lab.shared + "/.hostmesh"
        let files = LeaseFiles(directory: leaseDirectory)

        // Unplugged: node-b finds node-a dead (and node-a node-b), yet nothing is restarted: the
        // lease keeps changing. node-a's guest writes on.
        try lab.unplug(1)
        _ = try await awaitValue(60, "node-b never found node-a dead") {
            try await b.control.call("members", Empty(), as: [MemberRow].self).contains { $0.host == "node-a" && $0.status == "dead" } ? true : nil
        }
        let counter = try #require(try files.read(vm: spec.id, host: "node-a")).counter
        let written = try #require(DiskLog.lastRecord(console())).n
        try await Task.sleep(for: .seconds(7)) // more than twice the expiry
        #expect(try await TakeoverTests.running("ha-lab", on: [b]).isEmpty, "restarted elsewhere while its owner still renewed the lease")
        #expect(try files.leases(vm: spec.id).map(\.owner) == ["node-a"], "another host wrote a lease or claimed")
        #expect(try files.highestClaim(vm: spec.id)?.epoch == nil, "a claim was made")
        #expect((try files.read(vm: spec.id, host: "node-a")?.counter ?? 0) > counter + 10, "the lease was not renewed")
        #expect(ProcessProbe.startTime(qemu) != nil, "the copy died while cut off from the mesh only")
        #expect(DiskLog.lastRecord(console())!.n > written, "the guest stopped writing")
        let aSaw = try await a.control.call("members", Empty(), as: [MemberRow].self)
        #expect(aSaw.contains { $0.host == "node-b" && $0.status != "alive" }, "node-a still saw node-b alive: the cut did not cut \(aSaw)")

        // Plugged back in: the two find each other again.
        try lab.plug(1)
        _ = try await awaitValue(60, "node-a never came back in node-b's view") {
            try await b.control.call("members", Empty(), as: [MemberRow].self).contains { $0.host == "node-a" && $0.status == "alive" } ? true : nil
        }
        #expect(ProcessProbe.startTime(qemu) != nil)

        // Cut from the storage: node-a's lease writes fail; it kills its copy, and only then does
        // node-b start the VM. Sampled every 50 ms: never both at once.
        try lab.cutStorage(leaseDirectory, forProcess: a.pid)
        var aDied = false
        var taken: VMInfo?
        let deadline = ContinuousClock.now + .seconds(60)
        while taken == nil, ContinuousClock.now < deadline {
            // node-b first, then node-a's copy: a copy still there after node-b was seen running
            // it is a real overlap (sampled the other way round, one could die and the other start
            // during the slow query, and read as both).
            let seenOnB = try await TakeoverTests.running("ha-lab", on: [b]).first
            let alive = ProcessProbe.startTime(qemu) != nil
            aDied = aDied || !alive
            if let (_, info) = seenOnB {
                #expect(!alive, "node-b runs the VM while node-a's copy still runs")
                taken = info
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let onB = try #require(taken, "not taken over after the owner lost its storage\na: \(a.log.suffix(2000))\nb: \(b.log.suffix(3000))")
        #expect(aDied && onB.epoch == 3, "epoch \(String(describing: onB.epoch))")
        let keeper = LeaseKeeper.state(runtimeDirectory: a.stateDirectory + "/vms/" + spec.id) ?? ""
        #expect(keeper.hasPrefix("fenced: no lease renewal completed"), "node-a's keeper: \(keeper)")
        let acknowledged = DiskLog.records(console(), boot: first.boot)
        let onA = try await a.control.call("vm.show", ControlTypes.VMReference(vm: "ha-lab"), as: VMDetails.self).info
        #expect(onA.state == "failed" || onA.state == "in-doubt", "\(onA)")

        // The disk log: the new copy's records written since it started are intact, and so are
        // the old copy's acknowledged ones the new copy has not overwritten.
        let newConsole = TakeoverTests.console(b, spec.id)
        let newBoot = try await TakeoverTests.nextBoot(after: first.boot, console: newConsole)
        _ = try await awaitValue(60, "the new copy's disk log never got going") {
            (DiskLog.records(newConsole(), boot: newBoot).last ?? 0) >= 20 ? true : nil
        }
        let lastBefore = try #require(DiskLog.records(newConsole(), boot: newBoot).last)
        let image = try [UInt8](Data(contentsOf: URL(fileURLWithPath: spec.disks[0].path)))
        let lastAfter = try #require(DiskLog.records(newConsole(), boot: newBoot).last)
        let range = max(1, lastAfter - first.blocks + 2)...max(1, lastBefore)
        let newDamaged = range.filter { n in
            let start = (n % first.blocks) * DiskLog.blockSize
            return Array(image[start..<start + DiskLog.blockSize]) != DiskLog.record(n, boot: newBoot)
        }
        #expect(range.count >= 10 && newDamaged.isEmpty, "\(range.count) records checked; of the new copy's, overwritten: \(newDamaged.prefix(10))")
        let lastOld = try #require(acknowledged.last)
        let oldDamaged = (max(1, lastOld - first.blocks + 1)...lastOld).filter {
            !TakeoverTests.holdsRecordOrNewBoot(image, $0, boot: first.boot, newBoot: newBoot, blocks: first.blocks)
        }
        #expect(oldDamaged.isEmpty, "acknowledged records of the old copy lost: \(oldDamaged.prefix(10))")
        print("lab partition: unplugged 5 s, lease counter \(counter) -> renewed on; storage cut: taken over by node-b at epoch 3, "
              + "\(range.count) new-copy records and \(min(lastOld, first.blocks)) old-copy records checked intact")
    }
}

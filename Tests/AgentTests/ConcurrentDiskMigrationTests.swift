import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Four VMs with local disks migrating to one host at once (issue 11 item 5; Protocol.md §6.7):
/// the destination's default limit for migrations with local disks (`max_incoming_disk_migrations`,
/// 4) within a higher incoming limit (5 here; the source may send 5). Four migrations held at admission fill the disk
/// slots; a fifth VM with a local disk, asked with `--no-queue`, is refused as busy naming the
/// disk limit while its guest keeps running; the four then run together (mirrors, memory,
/// switchover at once) without harm: each guest goes on with the same boot and every record it saw
/// acknowledged is on its image on the destination. The figures of each are printed. A migration
/// of the four that the convergence ladder aborts for its time budget (a CPU-starved machine) must
/// leave its guest running at the source and then move alone; the test prints how many completed
/// together.
extension MigrationEndToEndTests {
    @Test func fourVMsWithLocalDisksMigrateAtOnceWithoutHarm() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        // a may send five with local disks, so that the fifth reaches b and b's limit refuses it.
        let a = try await mesh.start("node-a", arguments: ["--max-outgoing-migrations", "5", "--max-outgoing-disk-migrations", "5"])
        let b = try await mesh.start("node-b", arguments: ["--max-incoming-migrations", "5"], environment: ["HOSTMESH_TEST_PAUSE_AT": "file"])
        let names = ["d1", "d2", "d3", "d4"]
        // The four write their disk logs; the fifth only beats (it is there to be refused). All
        // boot at once: one after the other is slow on a busy 2-core machine.
        for name in names + ["d5"] {
            let image = mesh.root + "/a-local/\(name).raw"
            try sparseImage(image, mib: 16)
            var vm = spec(name, work: name == "d5" ? "heartbeat" : "heartbeat,disk")
            vm.disks = [VMSpec.Disk(path: image, format: .raw, shared: false)]
            _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        }
        // Five TCG guests booting together on two cores: allow them longer than one's 30 s.
        func booted(_ name: String) async throws -> String {
            for attempt in 1...3 {
                do { return try await heartbeat(a, name, after: 1).0 } catch where attempt < 3 { continue }
            }
            throw ControlError.failed("\(name) never booted")
        }
        var guests: [String: (boot: String, record: Int, blocks: Int)] = [:]
        for name in names {
            let boot = try await booted(name)
            let record = try await diskRecord(a, name, boot: boot, above: 5)
            let blocks = try #require(DiskLog.lastRecord(try await console(a, name))).blocks
            guests[name] = (boot, record, blocks)
        }
        _ = try await booted("d5")

        // Hold every incoming migration right after b admits it (its slot and its room taken).
        try Data("destination:admitted".utf8).write(to: URL(fileURLWithPath: b.stateDirectory + "/test-pause-at"))
        let started = ContinuousClock.now
        let moves = names.map { name in Task { try await migrate(name, from: a, to: b) } }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await b.control.call("migrations", Empty(), as: [MigrationRecord].self)
            .filter({ $0.role == "destination" && $0.phase == "admitted" && $0.endedAt == nil }).count < 4 {
            guard ContinuousClock.now < deadline else { throw ControlError.failed("b never held four admitted migrations:\n\(b.log.suffix(2000))") }
            try await Task.sleep(for: .milliseconds(50))
        }
        await #expect {
            _ = try await a.control.call("migrate", ControlTypes.Migrate(vm: "d5", to: .address(try HostPort(parsing: b.address)),
                                                                         settings: MigrationSettings(), noQueue: true), as: MigrationReport.self)
        } throws: { error in
            "\(error)".contains("migrations with local disks (limit 4)")
        }
        #expect(try await a.control.call("vm.show", ControlTypes.VMReference(vm: "d5"), as: VMDetails.self).info.qemuStatus == "running")

        // All four go on together.
        try FileManager.default.removeItem(atPath: b.stateDirectory + "/test-pause-at")
        _ = FileManager.default.createFile(atPath: b.stateDirectory + "/test-continue", contents: Data())
        var reports: [String: MigrationReport] = [:]
        var retried: [String] = []
        for (name, move) in zip(names, moves) {
            switch await move.result {
            case .success(let report): reports[name] = report
            case .failure(let error):
                // The one failure allowed: the convergence ladder's time budget ran out (a starved
                // CPU: on a 2-core machine at load 50 the tunnel moved 3-6 MB/s). That is an abort
                // before the switchover: the guest must still run at the source, unharmed.
                #expect("\(error)".contains("did not converge") && "\(error)".contains("the guest is on: source"), "\(name) did not move: \(error)")
                #expect(try await a.control.call("vm.show", ControlTypes.VMReference(vm: name), as: VMDetails.self).info.qemuStatus == "running")
                retried.append(name)
            }
        }
        let together = ContinuousClock.now - started
        print("four at once: \(reports.count) of 4 completed together in \(together); \(retried.isEmpty ? "none" : retried.joined(separator: ", ")) aborted before the switchover (budget) and moved again alone")
        for name in retried { reports[name] = try await migrate(name, from: a, to: b) }
        for name in names {
            let report = try #require(reports[name])
            let disk = try #require(report.disks?.first, "\(name) moved no disk")
            #expect(disk.virtualBytes == 16 << 20 && disk.copiedBytes > 0)
            print("four at once: \(name) total \(report.totalMs) ms, downtime \(report.downtimeMs) ms, disk mirrored \(disk.copiedBytes >> 10) KiB in \(disk.msToReady) ms (\(String(format: "%.1f", disk.mbPerSecond)) MB/s, \(disk.mode))")
        }

        // Without harm: the same boots go on at b, every acknowledged record on b's image.
        for name in names {
            let guest = try #require(guests[name])
            _ = try await diskRecord(b, name, boot: guest.boot, above: guest.record + 5)
            _ = try await b.control.call("vm.stop", ControlTypes.VMReference(vm: name), as: VMInfo.self)
            let image = try await diskPath(b, name)
            #expect(image.hasPrefix(b.stateDirectory + "/disks/"))
            let last = try #require(DiskLog.records(try await console(b, name), boot: String(guest.boot.prefix(8))).last)
            let damaged = try DiskLog.damagedRecords(image: image, boot: String(guest.boot.prefix(8)), upTo: last, blocks: guest.blocks)
            #expect(last > guest.record && damaged.isEmpty, "\(name): acknowledged records missing or torn on b's image (up to \(last)): \(damaged.prefix(10))")
            #expect(!FileManager.default.fileExists(atPath: mesh.root + "/a-local/\(name).raw"), "\(name): a's image should be gone")
        }
        // A disk slot is free again: the fifth goes.
        let fifth = try await migrate("d5", from: a, to: b)
        #expect(fifth.disks?.count == 1)
    }
}

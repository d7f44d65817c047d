import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// The pre-flight checklist (issue 16 item 5, Protocol.md §6.9) between real agents: every item
/// passes for a good move, and a disk marked shared that the destination sees as another file
/// (its own tmpfs over the directory, in a private mount namespace) fails, with the fix; a
/// migration runs the checklist first and is refused before the VM is touched.
extension MigrationEndToEndTests {
    static let unshare = "/usr/bin/unshare"

    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: unshare), "needs root and util-linux's unshare (a mount namespace)"))
    func theChecklistPassesAGoodMoveAndRefusesADiskThatIsNotReallyShared() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let storage = mesh.root + "/storage"
        try FileManager.default.createDirectory(atPath: storage, withIntermediateDirectories: true)
        let image = storage + "/shared.raw"
        _ = FileManager.default.createFile(atPath: image, contents: Data(count: 4 << 20))
        let a = try await mesh.start("node-a")
        let b = try await mesh.start("node-b")
        // node-c sees another file at the same path: a tmpfs of its own over the storage directory.
        let c = try await mesh.start("node-c", wrapper: [Self.unshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
                                                         #"mount -t tmpfs tmpfs "$0" && truncate -s 4M "$0/shared.raw" && exec "$@""#, storage])
        var vm = spec("checked")
        vm.disks = [VMSpec.Disk(path: image, format: .raw, shared: true)]
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        _ = try await heartbeat(a, "checked", after: 1)

        func check(_ to: AgentProcess) async throws -> PreflightReport {
            try await a.control.call("migrate.check", ControlTypes.Migrate(vm: "checked", to: .address(try HostPort(parsing: to.address)),
                                                                           settings: MigrationSettings()), as: PreflightReport.self)
        }
        let good = try await check(b)
        #expect(good.passed, "\(good.lines.joined(separator: "\n"))")
        #expect(Set(good.items.map(\.name)).isSuperset(of: ["vm", "machine", "cpu-model", "capacity", "shared-disk 0", "network"]), "\(good.lines)")
        #expect(good.items.first { $0.name == "machine" }?.detail.contains("pc-q35-") == true, "the alias is resolved: \(good.lines)")

        let bad = try await check(c)
        let disk = try #require(bad.items.first { $0.name == "shared-disk 0" }, "\(bad.lines)")
        #expect(!disk.ok && disk.detail.contains("not the source's file"), "\(bad.lines)")
        #expect(disk.fix?.contains("same shared storage") == true)
        let others = bad.items.filter { $0.name != "shared-disk 0" }
        #expect(others.allSatisfy { $0.ok }, "\(bad.lines)")
        #expect(bad.lines.contains { $0.hasPrefix("✗ shared-disk 0") } && bad.lines.contains { $0.hasPrefix("✓ machine") })

        // A migration runs the checklist first: refused before the VM is touched or anything journaled.
        await #expect {
            _ = try await migrate("checked", from: a, to: c)
        } throws: { error in
            "\(error)".contains("pre-flight") && "\(error)".contains("shared-disk 0")
        }
        #expect(try await a.control.call("vm.show", ControlTypes.VMReference(vm: "checked"), as: VMDetails.self).info.qemuStatus == "running")
        #expect(try await a.control.call("migrations", Empty(), as: [MigrationRecord].self).isEmpty)
        #expect(try await c.control.call("migrations", Empty(), as: [MigrationRecord].self).isEmpty)
        // The nonces are gone.
        #expect((try? FileManager.default.contentsOfDirectory(atPath: storage + "/.hostmesh"))?.isEmpty ?? true)

        // The good destination takes it, the prepare on the channel the checklist asked on (§6.9):
        // the same source port at node-b for both.
        _ = try await migrate("checked", from: a, to: b)
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == ["checked"])
        func remote(after message: String) -> String? {
            b.log.split(separator: "\n").last { $0.contains(message) }?
                .split(separator: " ").first { $0.hasPrefix("mesh.remote=") }.map(String.init)
        }
        let checked = try #require(remote(after: "pre-flight checklist answered"), "\(b.log.suffix(3000))")
        #expect(remote(after: "migration prepare received") == checked, "\(b.log.suffix(3000))")
        // The stream's channel was opened beside the checklist's, before QEMU connected (§6.3), and
        // as the migration started: the checklist above (and the agents' hello) measured node-b.
        #expect(a.log.contains("migration.opened_ahead=true"), "\(a.log.suffix(3000))")
        #expect(a.log.contains("migration.stream_opened=at-start"), "\(a.log.suffix(3000))")
    }
}

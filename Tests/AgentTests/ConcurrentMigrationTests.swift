import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Several VMs migrating at once, and the destination's limit on concurrent incoming migrations
/// (Protocol.md §6.3): with `--max-incoming-migrations 2`, two migrations held at admission fill
/// both slots, a third is refused with the reason while its guest keeps running, and once the two
/// finish the third goes through.
extension MigrationEndToEndTests {
    @Test func severalVMsMigrateAtOnceAndTheIncomingLimitRefusesTheRest() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a")
        let b = try await mesh.start("node-b", arguments: ["--max-incoming-migrations", "2"],
                                     environment: ["HOSTMESH_TEST_PAUSE_AT": "file"])
        let names = ["one", "two", "three"]
        for name in names {
            _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec(name), start: true), as: VMInfo.self)
        }
        var boots: [String: String] = [:]
        for name in names { boots[name] = try await heartbeat(a, name, after: 1).0 }

        // Hold every incoming migration right after b admits it (its slot taken).
        try Data("destination:admitted".utf8).write(to: URL(fileURLWithPath: b.stateDirectory + "/test-pause-at"))
        let first = Task { try await migrate("one", from: a, to: b) }
        let second = Task { try await migrate("two", from: a, to: b) }
        let deadline = ContinuousClock.now + .seconds(30)
        while try await b.control.call("migrations", Empty(), as: [MigrationRecord].self)
            .filter({ $0.role == "destination" && $0.phase == "admitted" && $0.endedAt == nil }).count < 2 {
            guard ContinuousClock.now < deadline else { throw ControlError.failed("b never held two admitted migrations:\n\(b.log.suffix(2000))") }
            try await Task.sleep(for: .milliseconds(50))
        }
        await #expect {
            _ = try await migrate("three", from: a, to: b)
        } throws: { error in
            "\(error)".contains("refused") && "\(error)".contains("limit 2")
        }
        #expect(try await a.control.call("vm.show", ControlTypes.VMReference(vm: "three"), as: VMDetails.self).info.qemuStatus == "running")

        // Let both go on together; then the third has a free slot.
        try FileManager.default.removeItem(atPath: b.stateDirectory + "/test-pause-at")
        FileManager.default.createFile(atPath: b.stateDirectory + "/test-continue", contents: Data())
        _ = try await (first.value, second.value)
        _ = try await migrate("three", from: a, to: b)

        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        let onB = try await b.control.call("vm.list", Empty(), as: [VMInfo].self)
        #expect(Set(onB.filter { $0.qemuStatus == "running" }.map(\.name)) == Set(names))
        for name in names {
            let (boot, _) = try await heartbeat(b, name)
            #expect(boot == boots[name], "\(name) rebooted")
        }
    }
}

import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Several VMs migrating at once, and the destination's limit on concurrent incoming migrations
/// (Protocol.md §6.4): with `--max-incoming-migrations 2`, two migrations held at admission fill
/// both slots, a third asked with `--no-queue` is refused with the reason (busy) while its guest
/// keeps running, and once the two finish the third goes through. (Without `--no-queue` the third
/// would wait and ask again: `MigrationQueueTests`.)
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
            _ = try await a.control.call("migrate", ControlTypes.Migrate(vm: "three", to: .address(try HostPort(parsing: b.address)),
                                                                         settings: MigrationSettings(), noQueue: true), as: MigrationReport.self)
        } throws: { error in
            "\(error)".contains("refused") && "\(error)".contains("limit 2")
        }
        #expect(try await a.control.call("vm.show", ControlTypes.VMReference(vm: "three"), as: VMDetails.self).info.qemuStatus == "running")

        // Let both go on together; then the third has a free slot.
        try FileManager.default.removeItem(atPath: b.stateDirectory + "/test-pause-at")
        _ = FileManager.default.createFile(atPath: b.stateDirectory + "/test-continue", contents: Data())
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

extension MigrationEndToEndTests {
    /// Two `vm start`s of one stopped VM at once, and a `vm stop` racing a migration: each VM is
    /// in one operation at a time, so one QEMU runs and the loser is told why.
    @Test func concurrentCommandsOnOneVMNeverMakeTwoQEMUs() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a")
        let b = try await mesh.start("node-b")
        let vm = spec("twice")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: false), as: VMInfo.self)
        async let first = Result(catching: { try await a.control.call("vm.start", ControlTypes.VMReference(vm: "twice"), as: VMInfo.self) })
        async let second = Result(catching: { try await a.control.call("vm.start", ControlTypes.VMReference(vm: "twice"), as: VMInfo.self) })
        let results = await [first, second]
        #expect(results.contains { if case .success = $0 { true } else { false } })
        for case .failure(let error) in results {
            #expect("\(error)".contains("is starting"), "\(error)")
        }
        _ = try await heartbeat(a, "twice", after: 1)
        #expect(pids(ofProcessesMentioning: a.stateDirectory + "/vms/" + vm.id + "/").count == 1)

        // A stop that arrives while the VM is migrating away is refused; the migration completes.
        async let migration = Result(catching: { try await migrate("twice", from: a, to: b) })
        try await Task.sleep(for: .milliseconds(30))
        let stop = await Result(catching: { try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "twice"), as: VMInfo.self) })
        switch (stop, await migration) {
        case (.success, .success):
            Issue.record("a VM was both stopped and migrated")
        case (.success, .failure(let error)):
            // The stop came first: the migration was refused before it began.
            #expect("\(error)".contains("stopping") || "\(error)".contains("not running"), "\(error)")
        case (.failure(let error), .success):
            #expect("\(error)".contains("migrating away"), "\(error)")
            #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.state) == ["running"])
        case (.failure(let stopError), .failure(let migrateError)):
            Issue.record("both failed: stop \(stopError), migrate \(migrateError)")
        }
        let qemus = pids(ofProcessesMentioning: a.stateDirectory + "/vms/" + vm.id + "/").count
            + pids(ofProcessesMentioning: b.stateDirectory + "/vms/" + vm.id + "/").count
        #expect(qemus <= 1)
    }
}

private extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

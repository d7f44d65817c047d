import Agent
import ControlAPI
import Foundation
import Hypervisor
import Synchronization
import Testing

/// The migration queue (issue 16 item 4, Protocol.md §6.4 "Busy and the queue"): beyond the
/// source's outgoing limit migrations wait and start in order, with their place shown by
/// `migrate` and `migrations`; `--no-queue` refuses instead; a queued VM stopped meanwhile is
/// dropped with the reason; a destination at its incoming limit answers busy and the source asks
/// again. Real agents, real QEMU, the test guest.
extension MigrationEndToEndTests {
    /// Lines of `{"progress": …}` one `migrate` call received, decoded.
    final class ProgressLog: Sendable {
        private let updates = Mutex<[MigrationProgressUpdate]>([])
        func add(_ line: Data) {
            struct Line: Decodable { var progress: MigrationProgressUpdate }
            // Other lines (the result) are not progress.
            if let update = try? JSONDecoder().decode(Line.self, from: line).progress { updates.withLock { $0.append(update) } }
        }
        var all: [MigrationProgressUpdate] { updates.withLock { $0 } }
    }

    func migrate(_ vm: String, from: AgentProcess, to: AgentProcess, noQueue: Bool = false, log: ProgressLog) async throws -> MigrationReport {
        try await from.control.call("migrate", ControlTypes.Migrate(vm: vm, to: .address(try HostPort(parsing: to.address)), settings: MigrationSettings(),
                                                                    noQueue: noQueue ? true : nil), as: MigrationReport.self) { log.add($0) }
    }

    /// Waits until `agent`'s `migrations` satisfies `condition`.
    func waitForMigrations(_ agent: AgentProcess, _ what: String, _ condition: ([MigrationRecord]) -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition(try await agent.control.call("migrations", Empty(), as: [MigrationRecord].self)) {
            guard ContinuousClock.now < deadline else { throw ControlError.failed("\(agent.hostID) never showed \(what):\n\(agent.log.suffix(2000))") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func migrationsBeyondTheOutgoingLimitWaitAndAllCompleteInOrder() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: ["--max-outgoing-migrations", "1"])
        let b = try await mesh.start("node-b", environment: ["HOSTMESH_TEST_PAUSE_AT": "file"])
        let names = ["one", "two", "three", "four"]
        for name in names {
            _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec(name), start: true), as: VMInfo.self)
        }
        var boots: [String: String] = [:]
        for name in names { boots[name] = try await heartbeat(a, name, after: 1).0 }

        // "one" takes a's only outgoing slot and is held on b right after admission.
        try Data("destination:admitted".utf8).write(to: URL(fileURLWithPath: b.stateDirectory + "/test-pause-at"))
        let logs = Dictionary(uniqueKeysWithValues: names.map { ($0, ProgressLog()) })
        let first = Task { try await migrate("one", from: a, to: b, log: logs["one"]!) }
        try await waitForMigrations(b, "one admitted") { $0.contains { $0.role == "destination" && $0.phase == "admitted" && $0.endedAt == nil } }

        // --no-queue: refused at once, naming the limit; the guest keeps running.
        await #expect {
            _ = try await migrate("two", from: a, to: b, noQueue: true, log: ProgressLog())
        } throws: { error in
            "\(error)".contains("limit 1") && "\(error)".contains("--no-queue")
        }
        #expect(try await a.control.call("vm.show", ControlTypes.VMReference(vm: "two"), as: VMDetails.self).info.qemuStatus == "running")

        // The others queue, in the order asked; `migrations` shows their places.
        var waiting: [Task<MigrationReport, any Error>] = []
        for (index, name) in names.dropFirst().enumerated() {
            waiting.append(Task { try await migrate(name, from: a, to: b, log: logs[name]!) })
            try await waitForMigrations(a, "\(name) queued at \(index + 1)") { records in
                records.contains { $0.vm == name && $0.phase == "queued" && $0.queuePosition == index + 1 }
            }
        }
        // A queued VM stopped meanwhile is dropped, with the reason, when the queue reaches it.
        _ = try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "four"), as: VMInfo.self)

        try FileManager.default.removeItem(atPath: b.stateDirectory + "/test-pause-at")
        _ = FileManager.default.createFile(atPath: b.stateDirectory + "/test-continue", contents: Data())
        _ = try await first.value
        _ = try await waiting[0].value
        _ = try await waiting[1].value
        await #expect {
            _ = try await waiting[2].value
        } throws: { error in
            "\(error)".contains("dropped from the queue") && "\(error)".contains("not running")
        }

        // Each queued migration was told its place, and moved up as the queue moved.
        #expect(logs["two"]!.all.compactMap(\.queuePosition).first == 1)
        #expect(logs["three"]!.all.compactMap(\.queuePosition) == [2, 1], "\(logs["three"]!.all)")
        // In order, one at a time (the limit): each began after the one before had ended.
        let sent = try await a.control.call("migrations", Empty(), as: [MigrationRecord].self).filter { $0.role == "source" }
        #expect(!sent.contains { $0.phase == "queued" })
        let byVM = Dictionary(grouping: sent, by: \.vm)
        for (earlier, later) in [("one", "two"), ("two", "three")] {
            let end = try #require(byVM[earlier]?.first?.endedAt)
            let start = try #require(byVM[later]?.first?.startedAt)
            #expect(start >= end, "\(later) began at \(start), before \(earlier) ended at \(end)")
        }
        #expect(sent.allSatisfy { $0.error == nil }, "\(sent)")
        let onB = try await b.control.call("vm.list", Empty(), as: [VMInfo].self)
        #expect(Set(onB.filter { $0.qemuStatus == "running" }.map(\.name)) == ["one", "two", "three"])
        for name in ["one", "two", "three"] {
            let (boot, _) = try await heartbeat(b, name)
            #expect(boot == boots[name], "\(name) rebooted")
        }
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == ["four"])
    }

    @Test func aBusyDestinationIsAskedAgainInsteadOfRefusing() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a")
        let b = try await mesh.start("node-b", arguments: ["--max-incoming-migrations", "1"], environment: ["HOSTMESH_TEST_PAUSE_AT": "file"])
        for name in ["one", "two"] {
            _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec(name), start: true), as: VMInfo.self)
        }
        for name in ["one", "two"] { _ = try await heartbeat(a, name, after: 1) }
        try Data("destination:admitted".utf8).write(to: URL(fileURLWithPath: b.stateDirectory + "/test-pause-at"))
        let first = Task { try await migrate("one", from: a, to: b, log: ProgressLog()) }
        try await waitForMigrations(b, "one admitted") { $0.contains { $0.role == "destination" && $0.phase == "admitted" && $0.endedAt == nil } }
        let log = ProgressLog()
        let second = Task { try await migrate("two", from: a, to: b, log: log) }
        // b is at its limit: it answers busy, and a asks again (at least twice while one is held).
        let deadline = ContinuousClock.now + .seconds(30)
        while log.all.filter({ $0.phase == "busy" }).count < 2 {
            guard ContinuousClock.now < deadline else { throw ControlError.failed("no busy answers seen: \(log.all)\n\(a.log.suffix(2000))") }
            try await Task.sleep(for: .milliseconds(50))
        }
        try FileManager.default.removeItem(atPath: b.stateDirectory + "/test-pause-at")
        _ = FileManager.default.createFile(atPath: b.stateDirectory + "/test-continue", contents: Data())
        _ = try await first.value
        _ = try await second.value
        let onB = try await b.control.call("vm.list", Empty(), as: [VMInfo].self)
        #expect(Set(onB.filter { $0.qemuStatus == "running" }.map(\.name)) == ["one", "two"])
        #expect(a.log.contains("destination busy; asking again"))
    }
}

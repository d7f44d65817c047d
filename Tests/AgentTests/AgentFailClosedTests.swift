@testable import Agent
import Foundation
import MeshTime
import GRDB
import Hypervisor
import Logging
import Membership
import Testing

/// Agent state that cannot be read makes the agent refuse, never guess (issue: fail closed).
@Suite(.timeLimit(.minutes(1)))
struct AgentFailClosedTests {
    /// A state directory with a runtime directory for VM `id` whose "QEMU" is a live process of
    /// ours carrying the directory's QMP socket in its argv, as a real QEMU does.
    final class OrphanFixture {
        let state: String
        let manager: VMManager
        let store: AgentStore
        let process: Process

        init(id: String) throws {
            state = FileManager.default.temporaryDirectory.appendingPathComponent("hm-failclosed-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            store = try AgentStore(stateDirectory: state)
            manager = VMManager(store: store, stateDirectory: state, logger: Logger(label: "test"))
            let directory = manager.directory(for: id)
            try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            // `; true` keeps the shell alive (no exec of sleep), so its argv keeps the socket path.
            process.arguments = ["-c", "sleep 30; true", directory.qmpSocket]
            try process.run()
            try "\(process.processIdentifier)\n".write(toFile: directory.pidFile, atomically: true, encoding: .utf8)
        }

        /// Whether the "QEMU" lives (a zombie does not: whether Foundation has reaped it yet varies).
        var alive: Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8), // gone: not alive
                  let close = stat.lastIndex(of: ")") else { return false }
            return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
        }

        deinit {
            if alive { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(atPath: state) // test cleanup
        }
    }

    @Test func anUnreadableVMTableRefusesToRecoverInsteadOfKillingQEMUs() async throws {
        let fixture = try OrphanFixture(id: "vm-owned")
        // What a corrupt database looks like to the agent: the VM table does not read.
        try await fixture.store.database.write { db in try db.execute(sql: "DROP TABLE vm") }
        await #expect {
            try await fixture.manager.recover()
        } throws: { error in
            "\(error)".contains("the VM table does not read") && "\(error)".contains("refuses to start")
        }
        #expect(fixture.alive, "a QEMU was killed as an orphan although the VM table could not be read")
        #expect(FileManager.default.fileExists(atPath: fixture.manager.directory(for: "vm-owned").path))
    }

    @Test func aReadableVMTableWithoutTheVMDiscardsTheOrphan() async throws {
        // The same QEMU with a store that reads (and has no row for it): it is an orphan and dies.
        let fixture = try OrphanFixture(id: "vm-orphan")
        try await fixture.manager.recover()
        let deadline = ContinuousClock.now + .seconds(5)
        while fixture.alive, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!fixture.alive, "the orphan QEMU still runs")
        #expect(!FileManager.default.fileExists(atPath: fixture.manager.directory(for: "vm-orphan").path))
    }

    @Test func unreadableMemoryIsAdvertisedUnhealthyNotZeroFree() {
        let before = MemberMetadata(version: 3, domain: "lab", cores: 4, memoryTotalBytes: 16 << 30, memoryFreeBytes: 8 << 30, cpuLoadMilli: 250)
        let unknown = AgentMembership.capacity(after: before, memory: nil, load: nil, cores: 4, runningVMs: 2, migrationsInFlight: 1)
        #expect(unknown.health == .unhealthy)
        #expect(unknown.memoryFreeBytes == 8 << 30 && unknown.memoryTotalBytes == 16 << 30, "unknown memory was advertised as a value")
        #expect(unknown.cpuLoadMilli == 250)
        #expect(unknown.runningVMs == 2 && unknown.migrationsInFlight == 1)
        // Placement avoids it while its memory is unknown...
        let member = Member(id: MemberID("b"), address: PeerAddress(host: "10.0.0.2", port: 7948), status: .alive, incarnation: 0,
                            metadata: { var m = unknown; m.channelAddress = PeerAddress(host: "10.0.0.2", port: 7946); return m }(),
                            statusChangedAt: .origin)
        guard case .failure(let refusal) = DestinationChooser.choose(from: [member], excluding: "a", domain: "lab", memoryMiB: 64) else {
            Issue.record("a host whose memory is unknown was chosen"); return
        }
        #expect(refusal.description.contains("failing: cannot read /proc/meminfo"), "\(refusal)")
        // ...and is healthy again once it reads.
        let known = AgentMembership.capacity(after: unknown, memory: (total: 16 << 30, available: 4 << 30), load: 2, cores: 4,
                                             runningVMs: 2, migrationsInFlight: 0)
        #expect(known.health == .ok && known.memoryFreeBytes == 4 << 30 && known.cpuLoadMilli == 500)
    }
}

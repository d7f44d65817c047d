import Foundation
import Hypervisor
import Testing

/// The real test guest (Deploy/guest) under TCG: boot, live migration, re-adoption, stop.
@Suite("Test guest on real QEMU", .guestBuilt, .timeLimit(.minutes(1)))
struct GuestTests {
    /// Waits for heartbeats on `directory`'s console; returns the last one.
    func waitForHeartbeat(in directory: VMRuntimeDirectory, bootID: String? = nil, above count: Int = 2) async throws -> (bootID: String, count: Int) {
        var last: (bootID: String, count: Int)?
        let seen = await TestSupport.eventually(timeout: .seconds(30)) {
            last = TestSupport.heartbeats(directory.readConsole()).last
            guard let last else { return false }
            return last.count > count && (bootID == nil || last.bootID == bootID)
        }
        try #require(seen, "no heartbeat above \(count) on \(directory.consoleLog); console: \(directory.readConsole().suffix(500))")
        return last!
    }

    @Test func heartbeatGuestMigratesLocallyAndKeepsCounting() async throws {
        let root = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(root) }
        let spec = try #require(TestSupport.guestSpec())
        let source = try await VMProcess.launch(spec: spec, directory: .init(path: root + "/src"), options: TestSupport.options)
        defer { source.kill() }
        let before = try await waitForHeartbeat(in: source.directory)
        #expect(source.directory.readConsole().contains("HOSTMESH-GUEST boot_id="))

        let (destination, result) = try await DirectMigration.migrateLocally(
            source: source, destinationDirectory: .init(path: root + "/dst"), options: TestSupport.options)
        defer { destination.kill() }
        print("direct migration, \(spec.memoryMiB) MiB heartbeat guest: total \(result.totalTimeMs) ms, downtime \(result.downtimeMs) ms, "
            + "\(result.transferredBytes / 1_000_000) MB moved, \(Int(result.mbPerSecond)) MB/s, \(result.iterations) iterations")
        #expect(result.final.phase == .completed)
        #expect(result.transferredBytes > 0)
        #expect(result.totalTimeMs > 0, "QEMU reported the figures")

        // The source is gone; the destination runs the same boot and continues the count.
        #expect(await source.exitIfEnded() != nil)
        #expect(try await destination.qmp.queryStatus() == VMRunStatus(running: true, status: .running))
        let sourceLast = try #require(TestSupport.heartbeats(source.directory.readConsole()).last)
        #expect(sourceLast.count >= before.count)
        let after = try await waitForHeartbeat(in: destination.directory, bootID: before.bootID, above: sourceLast.count)
        #expect(after.bootID == before.bootID)
        let destinationBeats = TestSupport.heartbeats(destination.directory.readConsole())
        #expect(destinationBeats.first?.count == sourceLast.count + 1, "the destination continues where the source stopped")
        #expect(!destination.directory.readConsole().contains("boot_id="), "the destination did not boot")

        let exit = await destination.stop()
        #expect(exit.status == .exited(0))
    }

    @Test func aRunningGuestIsReadoptedWithoutRestart() async throws {
        let root = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(root) }
        let spec = try #require(TestSupport.guestSpec())
        let first = try await VMProcess.launch(spec: spec, directory: .init(path: root + "/vm"), options: TestSupport.options)
        defer { first.kill() }
        let before = try await waitForHeartbeat(in: first.directory)
        await first.qmp.close()

        let adopted = try await VMProcess.adopt(directory: first.directory)
        #expect(adopted.pid == first.pid)
        #expect(try await adopted.qmp.queryStatus().running)
        let after = try await waitForHeartbeat(in: adopted.directory, bootID: before.bootID, above: before.count + 2)
        #expect(after.bootID == before.bootID)
        #expect(adopted.directory.readConsole().components(separatedBy: "boot_id=").count == 2, "booted exactly once")
        await adopted.stop()
    }
}

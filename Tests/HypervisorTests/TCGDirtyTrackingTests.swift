import Foundation
import Hypervisor
import Testing

/// Guest writes survive migrations under TCG. QEMU before 9.0 loses writes made through a
/// TLB entry older than a dirty-bitmap sync when the RAM block's length is a multiple of 64
/// pages (`GuestRAM` says why, and pads the RAM on such a QEMU). The guest's `memcheck`
/// workload sweeps a few pages as fast as it can and prints a LOST line for any page the
/// destination holds an older value of; a migration held at a 1 ms downtime limit for a while
/// runs many syncs while it sweeps. On QEMU 7.2 with the RAM size unpadded this test failed in
/// three runs of three (tens of pages lost in every migration, or the guest stopped sweeping);
/// padded, none is lost. On QEMU 9.0 and later the RAM is not padded, so this test is what
/// shows that QEMU's own fix holds.
@Suite("TCG dirty tracking across migrations", .guestBuilt, .timeLimit(.minutes(2)))
struct TCGDirtyTrackingTests {
    func sweeps(_ console: String) -> Int {
        console.split(whereSeparator: \.isNewline).last { $0.hasPrefix("MEMCHECK sweep=") }
            .flatMap { $0.split(separator: " ")[1].split(separator: "=").last.flatMap { Int($0) } } ?? 0
    }

    @Test func aSweepingGuestLosesNoWriteThereAndBack() async throws {
        let root = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(root) }
        let spec = try #require(TestSupport.guestSpec(memoryMiB: 128, work: "memcheck"))
        let first = try await VMProcess.launch(spec: spec, directory: .init(path: root + "/a"), options: TestSupport.options)
        defer { first.kill() }
        let sweeping = await TestSupport.eventually(timeout: .seconds(30)) { sweeps(first.directory.readConsole()) > 0 }
        try #require(sweeping, "memcheck never reported; console: \(first.directory.readConsole().suffix(500))")

        var settings = MigrationSettings()
        settings.downtimeLimitMs = 1 // never met while the guest sweeps: QEMU keeps iterating
        // ...also where QEMU estimates the local socket at GB/s (10.0: 1 ms of that holds the
        // sweep's 64 pages, and the migration converged after a handful of syncs).
        settings.maxBandwidthBytesPerSecond = 20 << 20
        var policy = ConvergenceLadder.Policy()
        policy.downtimeStepsMs = [500] // ...until the ladder raises it
        policy.stallPolls = 15
        policy.allowThrottle = false
        var current = first
        var copies = [first]
        defer { for copy in copies { copy.kill() } }
        for (hop, name) in ["b", "c"].enumerated() {
            let (next, result) = try await DirectMigration.migrateLocally(
                source: current, destinationDirectory: .init(path: root + "/" + name), settings: settings, policy: policy,
                options: TestSupport.options)
            copies.append(next)
            print("memcheck migration \(hop + 1): \(result.iterations) iterations, total \(result.totalTimeMs) ms, downtime \(result.downtimeMs) ms")
            #expect(result.final.phase == .completed)
            let arrived = sweeps(current.directory.readConsole())
            let continued = await TestSupport.eventually(timeout: .seconds(20)) { sweeps(next.directory.readConsole()) > arrived }
            #expect(continued, "the guest did not go on sweeping after migration \(hop + 1)")
            let lost = next.directory.readConsole().split(whereSeparator: \.isNewline).filter { $0.contains("MEMCHECK LOST") }
            #expect(lost.isEmpty, "migration \(hop + 1) lost guest writes: \(lost.prefix(3))")
            current = next
        }
    }
}

@testable import Agent
import Foundation
import HA
import Testing

/// The lease keeper process (`hostmesh lease-keeper`, Protocol.md §9.2) against a real
/// filesystem and a real process standing in for QEMU (`tail -f` of a file in its runtime directory, its pid in `qemu.pid` as QEMU
/// writes it): it renews while it can, kills the copy when its writes fail (the storage cut off)
/// or a claim above its epoch appears, refuses to acquire under a higher claim, releases on
/// SIGTERM and ends with its QEMU.
@Suite(.timeLimit(.minutes(2)))
struct LeaseKeeperTests {
    final class Setup {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hm-keeper-\(UUID().uuidString.prefix(8))").path
        var leaseDirectory: String { root + "/shared/.hostmesh" }
        var runtime: String { root + "/vm" }
        var failFile: String { root + "/fail-leases" }
        var slowFile: String { root + "/slow-leases" }
        var files: LeaseFiles { LeaseFiles(directory: leaseDirectory) }
        var processes: [Process] = []

        init() throws { try FileManager.default.createDirectory(atPath: root + "/vm", withIntermediateDirectories: true) }

        /// Starts the stand-in QEMU (its command line names the runtime directory, as QEMU's
        /// does) and writes its pid file.
        func startCopy() throws -> Process {
            let copy = Process()
            #expect(FileManager.default.createFile(atPath: runtime + "/stand-in.log", contents: nil))
            copy.executableURL = URL(fileURLWithPath: "/usr/bin/tail")
            copy.arguments = ["-f", runtime + "/stand-in.log"]
            try copy.run()
            processes.append(copy)
            try "\(copy.processIdentifier)\n".write(toFile: runtime + "/qemu.pid", atomically: true, encoding: .utf8)
            return copy
        }

        /// Starts a keeper for vm1 on node-a at `epoch` with short timings (with `incoming`: a
        /// migration's destination, `--incoming`).
        /// The fence is 12 renewals long: a keeper starved for a few hundred ms by the other test
        /// streams must not fence a copy that a test expects to run (400 ms did, elsewhere).
        func startKeeper(epoch: Int64, incoming: Bool = false, fenceMs: Int = 1_200, expiryMs: Int = 2_000) throws -> Process {
            let keeper = Process()
            keeper.executableURL = URL(fileURLWithPath: AgentProcess.binary)
            keeper.arguments = ["lease-keeper", "--lease-directory", leaseDirectory, "--vm", "vm1", "--host", "node-a", "--epoch", "\(epoch)",
                                "--runtime-directory", runtime, "--renew-ms", "100", "--fence-ms", "\(fenceMs)", "--tick-ms", "50",
                                "--kill-ms", "500", "--expiry-ms", "\(expiryMs)"] + (incoming ? ["--incoming"] : [])
            keeper.environment = ProcessInfo.processInfo.environment.merging(["HOSTMESH_TEST_LEASE_FAIL_IF": failFile,
                                                                              "HOSTMESH_TEST_LEASE_SLOW_IF": slowFile]) { $1 }
            _ = FileManager.default.createFile(atPath: root + "/keeper.log", contents: nil) // the log is for a failing test's reader
            keeper.standardError = FileHandle(forWritingAtPath: root + "/keeper.log")
            try keeper.run()
            processes.append(keeper)
            return keeper
        }

        func state() -> String { LeaseKeeper.state(runtimeDirectory: runtime) ?? "" }

        deinit {
            for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(atPath: root) // test cleanup
        }
    }

    /// Polls `condition` every 20 ms for up to 20 s.
    func eventually(_ condition: () throws -> Bool) async throws -> Bool {
        for _ in 0..<1000 {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try condition()
    }

    func exit(of process: Process) async throws -> Int32? {
        guard try await eventually({ !process.isRunning }) else { return nil }
        return process.terminationStatus
    }

    @Test func theCopyIsKilledWhenTheLeaseCannotBeRenewed() async throws {
        let setup = try Setup()
        let keeper = try setup.startKeeper(epoch: 5)
        #expect(try await eventually { setup.state() == "held" })
        let copy = try setup.startCopy()
        // It renews: the counter rises.
        let first = try #require(try setup.files.read(vm: "vm1", host: "node-a"))
        #expect(first.epoch == 5 && first.held)
        #expect(try await eventually { (try setup.files.read(vm: "vm1", host: "node-a")?.counter ?? 0) > first.counter + 3 })
        #expect(copy.isRunning)
        // The storage is cut off: the keeper kills the copy and says why.
        #expect(FileManager.default.createFile(atPath: setup.failFile, contents: nil))
        #expect(try await exit(of: keeper) == 4)
        #expect(try await eventually { !copy.isRunning })
        #expect(copy.terminationReason == .uncaughtSignal && copy.terminationStatus == SIGKILL)
        #expect(setup.state().hasPrefix("fenced: no lease renewal completed"))
    }

    /// Slow storage before it is fatal: the keeper reports how old the lease got before each
    /// renewal landed (`lease-keeper.renewals`) and warns in its log past halfway to the fence,
    /// while the copy goes on running.
    @Test func slowRenewalsAreReportedAndWarnedOfBeforeTheFence() async throws {
        let setup = try Setup()
        // Renew 100 ms, fence 6 s: the warning starts at a lease 3.05 s old. With 1.8 s writes a
        // renewal issued as the last one lands finds the lease about 3.7 s old: warned of, and
        // more than 2 s short of the fence.
        let keeper = try setup.startKeeper(epoch: 5, fenceMs: 6_000, expiryMs: 8_000)
        #expect(try await eventually { setup.state() == "held" })
        let copy = try setup.startCopy()
        #expect(try await eventually { LeaseKeeper.renewals(runtimeDirectory: setup.runtime) != nil })
        let quick = try #require(LeaseKeeper.renewals(runtimeDirectory: setup.runtime)?.report)
        #expect(quick.fenceAfter == .seconds(6) && quick.renewInterval == .milliseconds(100) && quick.longestStretch < quick.warnAfter, "\(quick)")
        try "1800".write(toFile: setup.slowFile, atomically: true, encoding: .utf8)
        func log() throws -> String { try String(contentsOfFile: setup.root + "/keeper.log", encoding: .utf8) }
        let warned = try await eventually { try log().contains("warning: the lease of vm1 was") }
        let text = try log()
        #expect(warned, "\(text)")
        #expect(try log().contains("too slow for these lease timings"))
        #expect(try await eventually { (LeaseKeeper.renewals(runtimeDirectory: setup.runtime)?.report.longestStretch ?? .zero) > quick.warnAfter })
        let slow = try #require(LeaseKeeper.renewals(runtimeDirectory: setup.runtime)?.report)
        #expect(slow.slowestWrite >= .milliseconds(1_800) && slow.longestStretch < .seconds(6), "\(slow)")
        // Slow, not cut off: the copy runs on under its lease.
        try await Task.sleep(for: .seconds(2))
        let after = try log()
        #expect(copy.isRunning && keeper.isRunning && setup.state() == "held", "\(setup.state())\n\(after)")
        try FileManager.default.removeItem(atPath: setup.slowFile)
    }

    @Test func aClaimAboveTheEpochKillsTheCopy() async throws {
        let setup = try Setup()
        let keeper = try setup.startKeeper(epoch: 5)
        #expect(try await eventually { setup.state() == "held" })
        let copy = try setup.startCopy()
        // A claim at the keeper's own epoch is not above it: nothing happens.
        #expect(try setup.files.claim(vm: "vm1", epoch: 5, host: "node-b"))
        try await Task.sleep(for: .milliseconds(300))
        #expect(copy.isRunning && keeper.isRunning)
        #expect(try setup.files.claim(vm: "vm1", epoch: 7, host: "node-b"))
        #expect(try await exit(of: keeper) == 4)
        #expect(try await eventually { !copy.isRunning })
        #expect(setup.state() == "fenced: node-b holds the VM at epoch 7, above this copy's 5")
    }

    @Test func aReturningOwnerUnderAHigherClaimDoesNotAcquire() async throws {
        let setup = try Setup()
        #expect(try setup.files.claim(vm: "vm1", epoch: 7, host: "node-b"))
        let keeper = try setup.startKeeper(epoch: 5)
        #expect(try await exit(of: keeper) == 3)
        #expect(setup.state() == "refused: node-b claimed the VM at epoch 7, above this copy's 5")
    }

    /// A pid file left by an earlier QEMU whose pid now belongs to another process: the keeper
    /// neither watches nor kills that process.
    @Test func aStalePidFileIsNotTakenForTheCopy() async throws {
        let setup = try Setup()
        let stranger = Process()
        stranger.executableURL = URL(fileURLWithPath: "/bin/sleep")
        stranger.arguments = ["600"]
        try stranger.run()
        setup.processes.append(stranger)
        try "\(stranger.processIdentifier)\n".write(toFile: setup.runtime + "/qemu.pid", atomically: true, encoding: .utf8)
        let keeper = try setup.startKeeper(epoch: 5)
        #expect(try await eventually { setup.state() == "held" })
        #expect(FileManager.default.createFile(atPath: setup.failFile, contents: nil))
        #expect(try await exit(of: keeper) == 4)
        #expect(stranger.isRunning, "the keeper killed a process that is not the VM's QEMU")
    }

    @Test func aFailingFirstWriteRefuses() async throws {
        let setup = try Setup()
        #expect(FileManager.default.createFile(atPath: setup.failFile, contents: nil))
        let keeper = try setup.startKeeper(epoch: 1)
        #expect(try await exit(of: keeper) == 3)
        #expect(setup.state().hasPrefix("refused: cannot write the lease"))
    }

    @Test func aStopReleasesTheLeaseAndAnEndedCopyEndsTheKeeper() async throws {
        let setup = try Setup()
        let keeper = try setup.startKeeper(epoch: 2)
        #expect(try await eventually { setup.state() == "held" })
        let copy = try setup.startCopy()
        keeper.terminate()
        #expect(try await exit(of: keeper) == 0)
        #expect(setup.state() == "released")
        #expect(try setup.files.read(vm: "vm1", host: "node-a")?.held == false)
        #expect(copy.isRunning) // the agent stops it; the keeper only released the lease

        let second = try setup.startKeeper(epoch: 3)
        #expect(try await eventually { setup.state() == "held" })
        #expect(try setup.files.read(vm: "vm1", host: "node-a")?.epoch == 3)
        kill(copy.processIdentifier, SIGKILL)
        #expect(try await exit(of: second) == 0,
                "the keeper did not end with its copy: copy \(copy.processIdentifier) stat \((try? String(contentsOfFile: "/proc/\(copy.processIdentifier)/stat", encoding: .utf8)) ?? "gone")") // gone: nil
        #expect(setup.state() == "ended: QEMU exited")
    }

    /// A migration's destination (Protocol.md §9.2, "Leases and handovers"): its lease says
    /// `incoming` and is renewed so; at the commit (SIGUSR1) it says `held`, and the keeper
    /// reports `held` only once such a write is on the storage. It fences like any keeper.
    @Test func anIncomingLeaseTurnsHeldAtTheCommit() async throws {
        let setup = try Setup()
        let keeper = try setup.startKeeper(epoch: 6, incoming: true)
        #expect(try await eventually { setup.state() == "incoming" })
        let copy = try setup.startCopy()
        let first = try #require(try setup.files.read(vm: "vm1", host: "node-a"))
        #expect(first.epoch == 6 && first.held && first.incoming)
        #expect(try await eventually { (try setup.files.read(vm: "vm1", host: "node-a")?.counter ?? 0) > first.counter + 3 })
        #expect(try setup.files.read(vm: "vm1", host: "node-a")?.incoming == true, "renewed as held before the commit")
        #expect(setup.state() == "incoming")

        kill(keeper.processIdentifier, SIGUSR1)
        #expect(try await eventually { setup.state() == "held" })
        let held = try #require(try setup.files.read(vm: "vm1", host: "node-a"))
        #expect(held.held && !held.incoming && held.epoch == 6, "\(held)")
        #expect(try await eventually { (try setup.files.read(vm: "vm1", host: "node-a")?.counter ?? 0) > held.counter + 3 })
        #expect(try setup.files.read(vm: "vm1", host: "node-a")?.incoming == false)

        #expect(FileManager.default.createFile(atPath: setup.failFile, contents: nil))
        #expect(try await exit(of: keeper) == 4)
        #expect(try await eventually { !copy.isRunning })
    }

    /// A destination whose migration is abandoned: SIGTERM releases its incoming lease.
    @Test func anAbandonedIncomingLeaseIsReleased() async throws {
        let setup = try Setup()
        let keeper = try setup.startKeeper(epoch: 6, incoming: true)
        #expect(try await eventually { setup.state() == "incoming" })
        keeper.terminate()
        #expect(try await exit(of: keeper) == 0)
        let record = try #require(try setup.files.read(vm: "vm1", host: "node-a"))
        #expect(!record.held && !record.incoming && setup.state() == "released")
    }
}

import Foundation
import NIOCore
import ShellSupport
import Testing
@testable import VirtualSwitch

/// The shell's lifecycle and its timers when things go wrong: a start that cannot read its
/// overlay, a VM that stops reading its socket (issue 19, Deliver 5).
@Suite("Switch shell lifecycle", .serialized, .timeLimit(.minutes(1)))
struct SwitchShellLifecycleTests {
    struct AdoptionRefused: Error {}

    @Test func aStartWhoseOverlayCannotBeReadFailsAndLeavesTheSwitchIdle() async throws {
        let vswitch = VirtualSwitch(configuration: .init(hostID: "host-a", overlayAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 0)))
        try await vswitch.runtime.onLoop { shell in
            shell.adoptOverlay = { socket in
                socket.closeUnadopted()  // what NIO would own is never handed over
                return vswitch.eventLoop.makeFailedFuture(AdoptionRefused())
            }
        }
        await #expect(throws: VirtualSwitchError.self) { try await vswitch.start() }
        let after = try await vswitch.runtime.onLoop { shell in (shell.phase, shell.tick == nil, shell.overlaySocket == nil) }
        #expect(after.0 == .idle, "a failed start left the switch \(after.0)")
        #expect(after.1, "a failed start left the tick running")
        #expect(after.2, "a failed start left the overlay socket open")
        #expect(await vswitch.overlayAddress() == nil)

        // The failure is not sticky: once the overlay can be read, start() starts for real.
        try await vswitch.runtime.onLoop { shell in shell.adoptOverlay = nil }
        try await vswitch.start()
        #expect(try await vswitch.runtime.onLoop { shell in shell.phase } == .running)
        #expect(await vswitch.overlayAddress() != nil)
        await vswitch.stop()
    }

    @Test func drainDelayDoublesUpToItsCap() {
        let delays = (0..<12).map { VirtualSwitch.drainDelay(afterFruitless: $0) }
        #expect(delays.prefix(4) == [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(4)])
        #expect(delays.max() == VirtualSwitch.maximumDrainDelay)
        #expect(VirtualSwitch.drainDelay(afterFruitless: .max) == .milliseconds(50))
    }

    /// A paused VM (switchover, an in-doubt hold) reads nothing: its held-back frames are tried
    /// again ever less often, not every 500 µs for as long as the pause lasts; once it reads
    /// again, they all arrive and the drain is back at full speed.
    @Test func aPausedVMsBacklogIsRetriedWithBackoff() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let setup = try await TwoPortSwitch.make(root: root)
        let (vswitch, nic1, nic2) = (setup.vswitch, setup.nic1, setup.nic2)
        let paused = CoreFixture.port(2).id

        // VM 2 stops reading: its socket queue fills, the rest is held back by the switch.
        try await nic2.channel.setOption(ChannelOptions.autoRead, value: false).get()
        let ping = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        let sent = 60
        for _ in 0..<sent { try await nic1.send(ping) }
        #expect(await eventually { (await vswitch.drainTimer(of: paused)?.firings ?? 0) >= 1 }, "nothing was held back")
        let start = try #require(await vswitch.drainTimer(of: paused))
        try await Task.sleep(for: .milliseconds(500))
        let end = try #require(await vswitch.drainTimer(of: paused))
        // A count, not a timing: load can only make it smaller. At a fixed 500 µs the timer
        // fires hundreds of times in this pause; doubling up to 50 ms, about 15 times.
        #expect(end.firings - start.firings <= 30, "the drain timer fired \(end.firings - start.firings) times while the VM was paused")
        #expect(end.fruitless >= 5)

        // VM 2 runs again: everything held back arrives, and the backoff is reset.
        try await nic2.channel.setOption(ChannelOptions.autoRead, value: true).get()
        #expect(await eventually { nic2.frames.count == sent }, "VM 2 received \(nic2.frames.count) of \(sent) frames")
        #expect(await vswitch.drainTimer(of: paused)?.fruitless == 0)
        await nic1.close()
        await nic2.close()
        await vswitch.stop()
    }
}

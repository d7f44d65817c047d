import MeshTime
import NIOCore
import Testing
@testable import VirtualSwitch

/// Lossless switchover (Protocol.md §8.6.1): frames for a VM that is paused, frozen or not yet
/// activated are held, bounded by bytes and age, and leave in order, each once: delivered where
/// the VM runs again, or sent on to its new host.
@Suite("Switch core: frames held during a move")
struct HeldFramesTests {
    /// Echo request `n` from the peer VM 3 to VM 1 (the sequence number tells them apart).
    static func ping(_ n: UInt16) -> ByteBuffer {
        TestFrames.icmpEcho(from: .test(3), to: .test(1), src: .test(3), dst: .test(1), sequence: n)
    }

    /// The ICMP sequence numbers of frames.
    static func sequences(_ frames: [ByteBuffer]) -> [UInt16] {
        frames.map { $0.getInteger(at: 14 + 20 + 6, as: UInt16.self) ?? 0 }
    }

    /// Frames sent over the overlay, with host and forwarded flag.
    static func sent(_ directives: [SwitchDirective]) -> [(HostID, ByteBuffer, Bool)] {
        directives.compactMap { if case let .sendFrame(host, _, frame, forwarded, _) = $0 { return (host, frame, forwarded) } else { return nil } }
    }

    /// Source A (VM 1 moves to B), destination B, the peer VM 3 on C; each knows the others.
    static func threeHosts(settings: SwitchSettings = SwitchSettings()) throws -> (a: CoreFixture, b: CoreFixture, c: CoreFixture) {
        var a = CoreFixture(host: "host-a", settings: settings), b = CoreFixture(host: "host-b", settings: settings)
        var c = CoreFixture(host: "host-c", settings: settings)
        let vm1 = a.addPort(1).events.flatMap { if case let .publish(l) = $0 { return l } else { return [] } }
        let vm3 = c.addPort(3).events.flatMap { if case let .publish(l) = $0 { return l } else { return [] } }
        _ = a.core.onLocations(vm3, from: .gossip, now: .origin)
        _ = b.core.onLocations(vm1 + vm3, from: .gossip, now: .origin)
        _ = c.core.onLocations(vm1, from: .gossip, now: .origin)
        try b.core.importPort(a.core.exportPortState("vm1/eth0", now: .origin), now: .origin)
        return (a, b, c)
    }

    @Test func framesDuringTheSwitchoverReachTheVMAtItsNewHostInOrderOnce() throws {
        var (a, b, _) = try Self.threeHosts()
        // Before the pause: delivered at once.
        #expect(Self.sequences(a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(1), forwarded: false,
                                                         now: .at(seconds: 1)).delivered(to: "vm1/eth0")) == [1])
        // The guest pauses (QEMU's STOP); the shell had not handed ping 2 to it yet.
        _ = try a.core.pausePort("vm1/eth0", undelivered: [Self.ping(2)], now: .at(seconds: 1.01))
        for n in UInt16(3)...5 {
            #expect(a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(n), forwarded: false,
                                              now: .at(seconds: 1.02)).isEmpty, "held, not sent to a paused guest")
        }
        let final = try a.core.freezePort("vm1/eth0", now: .at(seconds: 1.05))
        _ = a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(6), forwarded: false, now: .at(seconds: 1.06))
        #expect(a.core.heldFrames(of: "vm1/eth0")?.frames == 5)
        try b.core.applyPortDelta(final, now: .at(seconds: 1.07))

        // Committed: A sends what it held to B, oldest first, marked forwarded, then forwards
        // the stragglers as they come.
        let flushed = Self.sent(try a.core.forwardStragglers("vm1/eth0", to: "host-b", now: .at(seconds: 1.08)))
        #expect(flushed.allSatisfy { $0.0 == "host-b" && $0.2 })
        #expect(Self.sequences(flushed.map(\.1)) == [2, 3, 4, 5, 6])
        let straggler = Self.sent(a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(7), forwarded: false,
                                                            now: .at(seconds: 1.09)))
        #expect(Self.sequences(straggler.map(\.1)) == [7])

        // B: its port is still blocked (the guest has not announced itself): it holds them too.
        for frame in flushed.map(\.1) + straggler.map(\.1) {
            #expect(b.core.onFrameFromOverlay(from: "host-a", segment: 100, frame: frame, forwarded: true, now: .at(seconds: 1.1)).isEmpty)
        }
        // The guest's RARP activates the port: everything held goes to it first, in order.
        let activation = b.core.onFrameFromPort("vm1/eth0", frame: TestFrames.rarp(from: .test(1)), now: .at(seconds: 1.12))
        #expect(activation.events.contains { if case .portActivated = $0 { true } else { false } })
        #expect(Self.sequences(activation.delivered(to: "vm1/eth0")) == [2, 3, 4, 5, 6, 7])
        // Then the peer's frames sent straight to B.
        #expect(Self.sequences(b.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(8), forwarded: false,
                                                         now: .at(seconds: 1.13)).delivered(to: "vm1/eth0")) == [8])
        #expect(a.core.counters.heldFramesForwarded == 5 && a.core.counters.heldFramesDropped == 0)
        #expect(b.core.counters.heldFramesDelivered == 6 && b.core.counters.heldFramesDropped == 0)
        #expect(a.core.counters.toInactivePort == 0 && b.core.counters.toInactivePort == 0, "nothing dropped")
        #expect(b.core.heldFrames(of: "vm1/eth0")?.frames == 0)
    }

    @Test func aPortFrozenForAKnownDestinationSendsFramesThereAtOnce() throws {
        var (a, b, _) = try Self.threeHosts()
        _ = try a.core.pausePort("vm1/eth0", now: .origin)
        _ = a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(1), forwarded: false, now: .origin)
        // The freeze names the destination (the agent knows it from the pause on): what was
        // held goes there now, and so does everything after, each marked forwarded, in order.
        let final = try a.core.freezePort("vm1/eth0", destination: "host-b", now: .at(seconds: 0.05))
        let atFreeze = Self.sent(a.core.takeDirectives())
        #expect(atFreeze.map(\.0) == ["host-b"] && atFreeze.allSatisfy(\.2))
        let later = Self.sent(a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(2), forwarded: false, now: .at(seconds: 0.06)))
        #expect(later.map(\.0) == ["host-b"] && later.allSatisfy(\.2))
        #expect(a.core.heldFrames(of: "vm1/eth0")?.frames == 0)
        #expect(a.core.onFrameFromOverlay(from: "host-d", segment: 100, frame: Self.ping(9), forwarded: true, now: .at(seconds: 0.06)).isEmpty,
                "a forwarded frame is never forwarded again (held here instead)")
        // B holds them until the guest announces itself, then delivers them first.
        try b.core.applyPortDelta(final, now: .at(seconds: 0.07))
        for frame in (atFreeze + later).map(\.1) {
            _ = b.core.onFrameFromOverlay(from: "host-a", segment: 100, frame: frame, forwarded: true, now: .at(seconds: 0.08))
        }
        let activation = b.core.onFrameFromPort("vm1/eth0", frame: TestFrames.rarp(from: .test(1)), now: .at(seconds: 0.1))
        #expect(Self.sequences(activation.delivered(to: "vm1/eth0")) == [1, 2])
        // The commit confirmed: nothing left to send but the one that came in forwarded.
        #expect(Self.sequences(Self.sent(try a.core.forwardStragglers("vm1/eth0", to: "host-b", now: .at(seconds: 0.2))).map(\.1)) == [9])
        #expect(a.core.counters.heldFramesDropped == 0 && b.core.counters.heldFramesDropped == 0)
    }

    @Test func aRolledBackSwitchoverDeliversTheHeldFramesHereInOrder() throws {
        var f = CoreFixture(host: "host-a")
        f.addPort(1)
        _ = try f.core.pausePort("vm1/eth0", now: .origin)
        _ = f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(1), forwarded: false, now: .origin)
        _ = try f.core.freezePort("vm1/eth0", now: .at(seconds: 0.1))
        _ = f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(2), forwarded: false, now: .at(seconds: 0.2))
        let back = try f.core.unfreezePort("vm1/eth0", now: .at(seconds: 0.3))
        #expect(Self.sequences(back.delivered(to: "vm1/eth0")) == [1, 2])
        #expect(Self.sequences(f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(3), forwarded: false,
                                                         now: .at(seconds: 0.4)).delivered(to: "vm1/eth0")) == [3])

        // Paused but the migration failed before the freeze: resumed, the same.
        _ = try f.core.pausePort("vm1/eth0", now: .at(seconds: 1))
        _ = f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(4), forwarded: false, now: .at(seconds: 1))
        #expect(Self.sequences(try f.core.unfreezePort("vm1/eth0", now: .at(seconds: 1.1)).delivered(to: "vm1/eth0")) == [4])
    }

    @Test func aPauseNobodyEndsEndsByItselfAfterTheAgeBound() throws {
        var f = CoreFixture(host: "host-a")
        f.addPort(1)
        _ = try f.core.pausePort("vm1/eth0", now: .origin)
        _ = f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(1), forwarded: false, now: .at(seconds: 1.5))
        #expect(f.core.onTick(now: .at(seconds: 1.9)).deliveredPorts.isEmpty)
        // The pause lasted heldFramesMaxAge (2 s): the port delivers again, the held frame first.
        #expect(Self.sequences(f.core.onTick(now: .at(seconds: 2)).delivered(to: "vm1/eth0")) == [1])
        #expect(f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(2), forwarded: false,
                                          now: .at(seconds: 2.1)).deliveredPorts == ["vm1/eth0"])
    }

    @Test func framesPastTheByteOrAgeBoundAreDroppedAndCounted() throws {
        var settings = SwitchSettings()
        let size = Self.ping(1).readableBytes
        settings.heldFramesMaxBytes = 3 * size
        settings.heldFramesMaxAge = .seconds(1)
        var f = CoreFixture(host: "host-b", settings: settings)
        f.addPort(1, state: .blocked(activationDeadline: nil))
        for n in UInt16(1)...5 {
            _ = f.core.onFrameFromOverlay(from: "host-a", segment: 100, frame: Self.ping(n), forwarded: true, now: .origin)
        }
        #expect(f.core.heldFrames(of: "vm1/eth0")?.frames == 3)
        #expect(f.core.counters.heldFramesQueued == 3 && f.core.counters.heldFramesDropped == 2, "the newest past the bound")
        // Older than the age bound: dropped at the tick; a younger one stays.
        _ = f.core.onTick(now: .at(seconds: 0.9))
        #expect(f.core.heldFrames(of: "vm1/eth0")?.frames == 3)
        _ = f.core.onTick(now: .at(seconds: 1.5))
        #expect(f.core.heldFrames(of: "vm1/eth0")?.frames == 0)
        #expect(f.core.counters.heldFramesDropped == 5, "two over the bytes, three too old")
        _ = f.core.onFrameFromOverlay(from: "host-a", segment: 100, frame: Self.ping(9), forwarded: true, now: .at(seconds: 1.55))
        let activation = f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.rarp(from: .test(1)), now: .at(seconds: 1.6))
        #expect(Self.sequences(activation.delivered(to: "vm1/eth0")) == [9])
        // A removed port's held frames are dropped and counted.
        _ = try f.core.pausePort("vm1/eth0", now: .at(seconds: 2))
        _ = f.core.onFrameFromOverlay(from: "host-a", segment: 100, frame: Self.ping(10), forwarded: false, now: .at(seconds: 2))
        _ = try f.core.removePort("vm1/eth0", now: .at(seconds: 2))
        #expect(f.core.counters.heldFramesDropped == 6)
    }

    @Test func reclaimedFramesGoFirstAndAreNotAdmittedTwice() throws {
        // A deny-all ingress policy: an echo request from outside is refused, but frames the
        // shell hands back passed the firewall before and are delivered as they are.
        var f = CoreFixture(host: "host-a")
        f.addPort(1, policy: SecurityPolicy(ingress: .rules([])))
        _ = try f.core.pausePort("vm1/eth0", undelivered: [Self.ping(1), Self.ping(2)], now: .origin)
        _ = f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(3), forwarded: false, now: .origin)
        let before = try #require(f.core.counters(of: "vm1/eth0"))
        let out = try f.core.resumePort("vm1/eth0", now: .at(seconds: 0.1))
        #expect(Self.sequences(out.delivered(to: "vm1/eth0")) == [1, 2], "3 is refused by the ingress rules, as it would have been")
        let after = try #require(f.core.counters(of: "vm1/eth0"))
        #expect(after.txFrames == before.txFrames && after[.ingressPolicy] == before[.ingressPolicy] + 1)
    }

    /// A pause that does not apply (the port is not active) gives the shell's frames back, in
    /// order: nothing it had taken from its backlog is lost uncounted.
    @Test func aPortThatCannotPauseGivesBackTheFramesItWasHanded() throws {
        var (_, b, _) = try Self.threeHosts()  // b's port is imported: blocked
        let out = try b.core.pausePort("vm1/eth0", undelivered: [Self.ping(1), Self.ping(2)], now: .origin)
        #expect(Self.sequences(out.delivered(to: "vm1/eth0")) == [1, 2])
        #expect(b.core.heldFrames(of: "vm1/eth0")?.frames == 0)
    }

    @Test func withHoldingOffFramesForAnInactivePortAreDroppedAsBefore() throws {
        var settings = SwitchSettings()
        settings.holdFramesDuringMoves = false
        var (a, b, _) = try Self.threeHosts(settings: settings)
        // No pause: what the shell took from its backlog to hand over goes to the port again.
        #expect(Self.sequences(try a.core.pausePort("vm1/eth0", undelivered: [Self.ping(1)], now: .origin).delivered(to: "vm1/eth0")) == [1])
        #expect(a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(2), forwarded: false,
                                          now: .origin).deliveredPorts == ["vm1/eth0"], "no pause: delivered")
        _ = try a.core.freezePort("vm1/eth0", now: .origin)
        #expect(a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: Self.ping(3), forwarded: false, now: .origin).isEmpty)
        #expect(a.core.counters.toInactivePort == 1 && a.core.counters.heldFramesQueued == 0)
        #expect(try a.core.forwardStragglers("vm1/eth0", to: "host-b", now: .origin).isEmpty)
        #expect(b.core.onFrameFromOverlay(from: "host-a", segment: 100, frame: Self.ping(4), forwarded: true, now: .origin).isEmpty)
        #expect(b.core.counters.toInactivePort == 1)
    }
}

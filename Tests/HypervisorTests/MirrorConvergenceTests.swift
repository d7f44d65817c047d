import Hypervisor
import Testing

/// When a background disk mirror is taken for not converging (Protocol.md §6.7): deterministic,
/// on figures given at chosen instants.
struct MirrorConvergenceTests {
    func job(_ remaining: UInt64, of len: UInt64 = 64 << 20, ready: Bool = false, name: String = "mirror0") -> BlockJobInfo {
        BlockJobInfo(device: name, offset: len - remaining, len: len, ready: ready, status: ready ? "ready" : "running")
    }

    @Test func aMirrorThatKeepsShrinkingIsNeverSwitched() {
        var detector = MirrorConvergence(stallAfter: .seconds(3))
        var remaining: UInt64 = 64 << 20
        for second in 0..<60 {
            #expect(detector.observe([job(remaining)], at: .seconds(second)).isEmpty)
            remaining -= 1 << 20 // 1 MiB/s: slow, but progress
        }
    }

    @Test func aMirrorTheGuestOutrunsIsSwitchedOnceAfterTheStall() {
        var detector = MirrorConvergence(stallAfter: .seconds(3))
        #expect(detector.observe([job(40 << 20)], at: .zero).isEmpty)
        // What is left wobbles around the same figure: writes come as fast as the copy.
        #expect(detector.observe([job(39 << 20 + 900 << 10)], at: .seconds(1)).isEmpty)
        #expect(detector.observe([job(40 << 20 + 300 << 10)], at: .seconds(2)).isEmpty)
        #expect(detector.observe([job(40 << 20)], at: .milliseconds(2999)).isEmpty)
        #expect(detector.observe([job(40 << 20)], at: .seconds(3)) == ["mirror0"])
        detector.switched("mirror0")
        // The write-blocking job starts over from the whole disk and is left alone.
        for second in 4..<30 { #expect(detector.observe([job(64 << 20)], at: .seconds(second)).isEmpty) }
        #expect(detector.writeBlocking == ["mirror0"])
    }

    @Test func progressResetsTheClockAndReadyJobsAreLeftAlone() {
        var detector = MirrorConvergence(stallAfter: .seconds(3))
        _ = detector.observe([job(10 << 20), job(10 << 20, name: "mirror1")], at: .zero)
        // mirror0 drops by 1 MiB (a step) at 2 s; mirror1 is synchronised.
        #expect(detector.observe([job(9 << 20), job(0, ready: true, name: "mirror1")], at: .seconds(2)).isEmpty)
        #expect(detector.observe([job(9 << 20), job(0, ready: true, name: "mirror1")], at: .seconds(4)).isEmpty)
        #expect(detector.observe([job(9 << 20), job(0, ready: true, name: "mirror1")], at: .seconds(5)) == ["mirror0"])
    }

    @Test func aSmallDiskNeedsOnlyAProportionateStep() {
        var detector = MirrorConvergence(stallAfter: .seconds(1))
        _ = detector.observe([job(100 << 10, of: 1 << 20)], at: .zero)
        // 5% of 100 KiB is progress on a small disk, though far below 1 MiB.
        #expect(detector.observe([job(94 << 10, of: 1 << 20)], at: .milliseconds(900)).isEmpty)
        #expect(detector.observe([job(94 << 10, of: 1 << 20)], at: .milliseconds(1800)).isEmpty)
        #expect(detector.observe([job(94 << 10, of: 1 << 20)], at: .milliseconds(1900)) == ["mirror0"])
    }
}

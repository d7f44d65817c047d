import Migration
import Testing

/// Buffers by round trip: shallow on a LAN (as before), twice the bandwidth-delay product at
/// distance (at the link's rate where given, else 250 Mbit/s), from autotuning where the kernel
/// lets a receive buffer grow that far, set (forced past the request cap with CAP_NET_ADMIN)
/// where not, and said to be capped where neither reaches it.
struct StreamBufferSizingTests {
    typealias Limits = StreamBufferSizing.KernelLimits
    /// This build VM's: tcp_wmem max 4 MiB, wmem_max 4 MiB; tcp_rmem max 32 MiB, rmem_max 4 MiB.
    let send = Limits(autotuneMax: 4 << 20, requestMax: 4 << 20, mayForce: true)
    let receive = Limits(autotuneMax: 32 << 20, requestMax: 4 << 20, mayForce: true)
    /// 1 Gbit/s, bytes per second.
    let gigabit = 125_000_000

    @Test func aLANKeepsTheShallowBufferWhateverTheKernelAllows() {
        for rtt: UInt32 in [0, 40, 800, 9_999] {
            for limits in [send, receive, Limits(autotuneMax: 1 << 30, requestMax: 1 << 30, mayForce: false)] {
                let plan = StreamBufferSizing.plan(rttMicroseconds: rtt, limits: limits, rateBytesPerSecond: gigabit, autotune: false)
                #expect(plan.setting == .fixed(512 << 10))
                #expect(!plan.capped)
            }
        }
    }

    @Test func aDistanceStreamWantsTwiceTheProductAndGetsItFromAutotuningOrASetBuffer() {
        // 150 ms at 250 Mbit/s (the rate assumed when none is given) is 4.69 MB: 9.375 MB wanted.
        #expect(StreamBufferSizing.wantedBytes(rttMicroseconds: 150_000) == 9_375_000)
        // The receiver here autotunes to 32 MiB: left to it, at 150 and 250 ms (15.6 MB).
        #expect(StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: receive) == .init(setting: .autotuned, wantedBytes: 9_375_000, grantedBytes: 32 << 20))
        #expect(StreamBufferSizing.plan(rttMicroseconds: 250_000, limits: receive).setting == .autotuned)
        // The sender sets it: past wmem_max's 4 MiB, forced (CAP_NET_ADMIN).
        var plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: send, autotune: false)
        #expect(plan.setting == .forced(4_687_500) && !plan.capped)
        // 20 ms: 1.25 MB wanted, within wmem_max: set.
        #expect(StreamBufferSizing.plan(rttMicroseconds: 20_000, limits: send, autotune: false).setting == .fixed(625_000))
        // A receiver whose namespace caps autotuning at 6 MiB (an older kernel's default) at 250 ms: forced.
        plan = StreamBufferSizing.plan(rttMicroseconds: 250_000, limits: Limits(autotuneMax: 6 << 20, requestMax: 208_896, mayForce: true))
        #expect(plan.setting == .forced(7_812_500) && !plan.capped)
    }

    @Test func withoutCapNetAdminTheLargestReachableBufferIsUsedAndCalledCapped() {
        // Send side at 1 Gbit/s without the capability: 4 MiB requested (8 MiB held), below 37.5 MB.
        var limits = send
        limits.mayForce = false
        var plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: limits, rateBytesPerSecond: gigabit, autotune: false)
        #expect(plan.setting == .fixed(4 << 20))
        #expect(plan.wantedBytes == 37_500_000 && plan.grantedBytes == 8 << 20 && plan.capped)
        // Receive side: autotuning's 32 MiB beats a 4 MiB request (8 MiB held), still below 37.5 MB.
        limits = receive
        limits.mayForce = false
        plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: limits, rateBytesPerSecond: gigabit)
        #expect(plan.setting == .autotuned)
        #expect(plan.grantedBytes == 32 << 20 && plan.capped)
        // A tiny cap never makes a distance stream shallower than a LAN one.
        plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: Limits(autotuneMax: 200_000, requestMax: 200_000, mayForce: false))
        #expect(plan.setting == .fixed(512 << 10) && plan.capped)
    }

    @Test func aStripeWantsItsShareSoThatNStripesHoldOneStreamsBytes() {
        // 150 ms at 1 Gbit/s, 8 stripes: 37.5 MB / 8 each (within wmem_max here: set, not forced).
        let plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: send, share: 8, rateBytesPerSecond: gigabit, autotune: false)
        #expect(plan.wantedBytes == 4_687_500 && plan.setting == .fixed(2_343_750))
        // 150 ms at 250 Mbit/s, 8 stripes: 1.17 MB each, which autotuning could reach (4 MiB) but a sender sets.
        #expect(StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: send, share: 8, autotune: false).setting == .fixed(585_938))
        // 20 ms, 16 stripes: 1.25 MB / 16 is below what a LAN stream holds, so a LAN stream's 1 MiB.
        #expect(StreamBufferSizing.plan(rttMicroseconds: 20_000, limits: send, share: 16).wantedBytes == 1 << 20)
        // On a LAN a stripe is shallow like any stream.
        #expect(StreamBufferSizing.plan(rttMicroseconds: 500, limits: send, share: 8).setting == .fixed(512 << 10))
        // A receiving stripe is set to its share too: autotuning (32 MiB here) would let each of
        // the 8 hold a whole stream's bytes unread.
        #expect(StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: receive, share: 8).setting == .fixed(585_938))
    }

    /// The kernel doubles a request: halved down, an odd share came back a byte short and was
    /// reported as capped (a warning per stripe, seen on every stripe at 250 ms).
    @Test func aSetBufferDoubledIsNeverAByteShortOfTheWantedOne() {
        for rtt: UInt32 in [20_000, 150_000, 250_521] {
            for share in 1...16 {
                let plan = StreamBufferSizing.plan(rttMicroseconds: rtt, limits: send, share: share, autotune: false)
                switch plan.setting {
                case .fixed(let request), .forced(let request):
                    #expect(2 * request >= plan.wantedBytes && 2 * request <= plan.wantedBytes + 1, "\(rtt) µs, \(share) stripes: \(plan)")
                default:
                    Issue.record("a sending end at \(rtt) µs is set, not \(plan.setting)")
                }
            }
        }
    }

    @Test func aRoundTripOrRatePastReasonIsBounded() {
        // A peer that held its ACKs back makes the handshake's round trip 10 s: sized as 500 ms.
        #expect(StreamBufferSizing.wantedBytes(rttMicroseconds: 10_000_000) == StreamBufferSizing.wantedBytes(rttMicroseconds: 500_000))
        // 1 Tbit/s at 500 ms would be 125 GB: 128 MiB at most.
        #expect(StreamBufferSizing.wantedBytes(rttMicroseconds: 500_000, rateBytesPerSecond: 125_000_000_000) == 128 << 20)
        #expect(StreamBufferSizing.wantedBytes(rttMicroseconds: UInt32.max, rateBytesPerSecond: Int.max) == 128 << 20)
    }

    @Test func aSendingEndIsAlwaysSetNeverLeftToAutotuning() {
        // 1 Gbit/s at 150 ms is 37.5 MB wanted; a sender whose autotuning would reach it still sets it (a cap on what is in flight).
        let roomy = Limits(autotuneMax: 64 << 20, requestMax: 64 << 20, mayForce: false)
        #expect(StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: roomy, rateBytesPerSecond: gigabit, autotune: false).setting == .fixed(18_750_000))
        #expect(StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: roomy, rateBytesPerSecond: gigabit).setting == .autotuned)
    }
}

import Migration
import Testing

/// Buffers by round trip: shallow on a LAN (as before), twice the bandwidth-delay product at
/// distance, from autotuning where the kernel lets it grow that far, set (forced past the request
/// cap with CAP_NET_ADMIN) where not, and said to be capped where neither reaches it.
struct StreamBufferSizingTests {
    typealias Limits = StreamBufferSizing.KernelLimits
    /// This build VM's: tcp_wmem max 4 MiB, wmem_max 4 MiB; tcp_rmem max 32 MiB, rmem_max 4 MiB.
    let send = Limits(autotuneMax: 4 << 20, requestMax: 4 << 20, mayForce: true)
    let receive = Limits(autotuneMax: 32 << 20, requestMax: 4 << 20, mayForce: true)

    @Test func aLANKeepsTheShallowBufferWhateverTheKernelAllows() {
        for rtt: UInt32 in [0, 40, 800, 9_999] {
            for limits in [send, receive, Limits(autotuneMax: 1 << 30, requestMax: 1 << 30, mayForce: false)] {
                let plan = StreamBufferSizing.plan(rttMicroseconds: rtt, limits: limits)
                #expect(plan.setting == .fixed(512 << 10))
                #expect(!plan.capped)
            }
        }
    }

    @Test func aDistanceStreamWantsTwiceTheProductAndGetsItFromAutotuningOrASetBuffer() {
        // 150 ms at 1 Gbit/s is 18.75 MB: the kernel buffer wanted is 37.5 MB.
        #expect(StreamBufferSizing.wantedBytes(rttMicroseconds: 150_000) == 37_500_000)
        // Autotuning grows that far: left to it.
        let roomy = Limits(autotuneMax: 64 << 20, requestMax: 208_896, mayForce: false)
        #expect(StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: roomy) == .init(setting: .autotuned, wantedBytes: 37_500_000, grantedBytes: 64 << 20))
        // 20 ms: 5 MB wanted; the receive side autotunes to 32 MiB, the send side sets 2.5 MB (within wmem_max).
        #expect(StreamBufferSizing.plan(rttMicroseconds: 20_000, limits: receive).setting == .autotuned)
        #expect(StreamBufferSizing.plan(rttMicroseconds: 20_000, limits: send).setting == .fixed(2_500_000))
        // 150 ms here: above both autotuning maxima and the request caps, so forced (CAP_NET_ADMIN).
        for limits in [send, receive] {
            let plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: limits)
            #expect(plan.setting == .forced(18_750_000))
            #expect(!plan.capped)
        }
    }

    @Test func withoutCapNetAdminTheLargestReachableBufferIsUsedAndCalledCapped() {
        // Send side without the capability: 4 MiB requested (8 MiB held) beats autotuning's 4 MiB.
        var limits = send
        limits.mayForce = false
        var plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: limits)
        #expect(plan.setting == .fixed(4 << 20))
        #expect(plan.grantedBytes == 8 << 20 && plan.capped)
        // Receive side: autotuning's 32 MiB beats a 4 MiB request (8 MiB held), still below 37.5 MB.
        limits = receive
        limits.mayForce = false
        plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: limits)
        #expect(plan.setting == .autotuned)
        #expect(plan.grantedBytes == 32 << 20 && plan.capped)
        // A tiny cap never makes a distance stream shallower than a LAN one.
        plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: Limits(autotuneMax: 200_000, requestMax: 200_000, mayForce: false))
        #expect(plan.setting == .fixed(512 << 10) && plan.capped)
    }

    @Test func aStripeWantsItsShareSoThatNStripesHoldOneStreamsBytes() {
        // 150 ms, 8 stripes: 37.5 MB / 8 each (within both request caps here: set, not forced).
        let plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: send, share: 8)
        #expect(plan.wantedBytes == 4_687_500 && plan.setting == .fixed(2_343_750))
        // 20 ms, 16 stripes: 5 MB / 16 is below what a LAN stream holds, so a LAN stream's 1 MiB.
        #expect(StreamBufferSizing.plan(rttMicroseconds: 20_000, limits: send, share: 16).wantedBytes == 1 << 20)
        // On a LAN a stripe is shallow like any stream.
        #expect(StreamBufferSizing.plan(rttMicroseconds: 500, limits: send, share: 8).setting == .fixed(512 << 10))
    }

    @Test func theLinksRateWhereGivenSizesTheSendBufferAndASendBufferIsNeverLeftToAutotuning() {
        // 150 ms at 250 Mbit/s (31.25 MB/s): a product of 4.69 MB, 9.375 MB wanted; past wmem_max, forced.
        let plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: send, rateBytesPerSecond: 31_250_000, autotune: false)
        #expect(plan.wantedBytes == 9_375_000 && plan.setting == .forced(4_687_500))
        // 8 stripes of it: 1.17 MB each, which autotuning could reach (4 MiB) but a sender sets.
        let stripe = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: send, share: 8, rateBytesPerSecond: 31_250_000, autotune: false)
        #expect(stripe.setting == .fixed(585_937))
        #expect(StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: receive, share: 8, rateBytesPerSecond: 31_250_000).setting == .autotuned)
        // Even an unknown rate's 37.5 MB is set, not autotuned, on a sending end whose autotuning reaches it.
        let roomy = Limits(autotuneMax: 64 << 20, requestMax: 64 << 20, mayForce: false)
        #expect(StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: roomy, autotune: false).setting == .fixed(18_750_000))
    }
}

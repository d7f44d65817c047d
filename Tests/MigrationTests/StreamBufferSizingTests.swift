import Migration
import Testing

/// Buffers by round trip: shallow on a LAN (as before), the bandwidth-delay product at distance.
struct StreamBufferSizingTests {
    @Test func aLANKeepsTheShallowBufferAndADistanceGetsItsProductWithinTheKernelCap() {
        let shallow = StreamBufferSizing.Setting.fixed(512 << 10)
        // Not measured, loopback, a LAN, just below the threshold: shallow on both ends.
        for rtt: UInt32 in [0, 40, 800, 9_999] {
            #expect(StreamBufferSizing.sendBuffer(rttMicroseconds: rtt, kernelCap: 4 << 20) == shallow)
            #expect(StreamBufferSizing.receiveBuffer(rttMicroseconds: rtt) == shallow)
        }
        // 150 ms at 1 Gbit/s is 18.75 MB: the kernel's cap decides; a bigger cap is used up to the product.
        #expect(StreamBufferSizing.sendBuffer(rttMicroseconds: 150_000, kernelCap: 4 << 20) == .fixed(4 << 20))
        #expect(StreamBufferSizing.sendBuffer(rttMicroseconds: 150_000, kernelCap: 64 << 20) == .fixed(18_750_000))
        // 20 ms: 2.5 MB.
        #expect(StreamBufferSizing.sendBuffer(rttMicroseconds: 20_000, kernelCap: 64 << 20) == .fixed(2_500_000))
        // A tiny cap never makes a distance stream shallower than a LAN one.
        #expect(StreamBufferSizing.sendBuffer(rttMicroseconds: 150_000, kernelCap: 200_000) == shallow)
        // The receiver leaves the window to autotuning at distance.
        #expect(StreamBufferSizing.receiveBuffer(rttMicroseconds: 10_000) == .autotuned)
        #expect(StreamBufferSizing.receiveBuffer(rttMicroseconds: 250_000) == .autotuned)
    }
}

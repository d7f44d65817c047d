#if os(Linux)
@testable import Migration
import NIOCore
import NIOPosix
import Testing

/// The round trip stream sizing reads: the raw `tcp_info` layout agrees with Glibc's where both
/// reach (`tcpi_rtt`), the least sampled round trip is a real figure once data was acknowledged
/// and is the one used, and a closed channel reads zero rather than failing.
@Suite(.timeLimit(.minutes(1))) struct TCPRoundTripTests {
    @Test func theLeastSampledRoundTripIsReadAndPreferred() async throws {
        let loopback = try await LoopbackTCP.open()
        let client = loopback.client
        let chunk = client.allocator.buffer(repeating: 0x5a, count: 256 << 10)
        for _ in 0..<8 { try await client.writeAndFlush(chunk).get() }
        // Acknowledged data gives samples; wait until the kernel has one.
        var info: KernelTCPInfo?
        for _ in 0..<100 {
            info = try await KernelTCPInfo.read(client).get()
            if let least = info?.minimumRoundTrip, least > 0, least < UInt32.max { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let raw = try #require(info, "TCP_INFO reads on a TCP channel")
        let least = raw.minimumRoundTrip
        #expect(least > 0 && least < 1_000_000, "tcpi_min_rtt \(least) µs over loopback: the layout was misread")
        // Once every byte is acknowledged (loopback: well within 200 ms) no sample moves `tcpi_rtt`:
        // Glibc's and the raw word at its offset are then the same field.
        try await Task.sleep(for: .milliseconds(200))
        let glibc = try await (client as! any SocketOptionProvider).getTCPInfo().get().tcpi_rtt
        let again = try #require(try await KernelTCPInfo.read(client).get())
        #expect(again.smoothedRoundTrip == glibc, "raw tcpi_rtt \(again.smoothedRoundTrip) against Glibc's \(glibc)")
        #expect(TCPRoundTrip.microseconds(again) == again.minimumRoundTrip, "the least sampled round trip is the one used")
        // The smoothed figure averages samples none below the least (its 1/8 µs fraction dropped):
        // another field read at offset 148 would not keep to that.
        #expect(again.minimumRoundTrip <= again.smoothedRoundTrip + 1, "min \(again.minimumRoundTrip) µs, smoothed \(again.smoothedRoundTrip) µs")
        #expect(try await TCPRoundTrip.read(client).get() == TCPRoundTrip.microseconds(try #require(try await KernelTCPInfo.read(client).get())))

        try await client.close()
        #expect(try await TCPRoundTrip.read(client).get() == 0, "a closed channel reads 0")
        try await loopback.close()
    }

    @Test func withoutASampleTheSmoothedRoundTripIsUsed() {
        // The words of a little-endian host (the tests' machines): tcpi_rtt at byte 68 and
        // tcpi_min_rtt at byte 148 are the high halves of words 8 and 18.
        var info = KernelTCPInfo()
        info.words.8 = UInt64(151_000) << 32
        info.words.18 = UInt64(UInt32.max) << 32 // no sample yet
        #expect(info.smoothedRoundTrip == 151_000)
        #expect(TCPRoundTrip.microseconds(info) == 151_000)
        info.words.18 = 0 // a kernel before 4.10 leaves it zero
        #expect(TCPRoundTrip.microseconds(info) == 151_000)
        info.words.18 = UInt64(149_500) << 32
        #expect(TCPRoundTrip.microseconds(info) == 149_500)
    }
}
#endif

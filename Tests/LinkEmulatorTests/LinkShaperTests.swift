import LinkEmulator
import Testing

@Suite("Link emulator core: the shaper's verdicts")
struct LinkShaperTests {
    private func profile(rttMs: Int64, rateMbit: Double?, loss: Double = 0) -> LinkProfile {
        LinkProfile(rtt: .milliseconds(rttMs), rateMbit: rateMbit, lossRate: loss, seed: 7)
    }

    @Test("an idle unlimited link delivers after exactly the one-way delay")
    func delayOnly() {
        var shaper = LinkShaper(profile: profile(rttMs: 150, rateMbit: nil))
        #expect(shaper.arrive(size: 1000, kind: .datagram, now: 1_000) == .deliver(atNanoseconds: 1_000 + 75_000_000))
        #expect(shaper.arrive(size: 1000, kind: .stream, now: 2_000) == .deliver(atNanoseconds: 2_000 + 75_000_000))
    }

    @Test("after the burst, departures are spaced by size / rate, and the queue is bounded (drop-tail)")
    func rateAndDropTail() {
        // 80 Mbit/s = 10 bytes per microsecond; burst 64 KiB; queue 256 KiB.
        var shaper = LinkShaper(profile: profile(rttMs: 20, rateMbit: 80))
        var deliveries: [Int64] = []
        var dropped = 0
        for _ in 0..<400 {
            switch shaper.arrive(size: 1000, kind: .datagram, now: 0) {
            case .deliver(let at): deliveries.append(at)
            case .drop(let reason):
                #expect(reason == .queueFull)
                dropped += 1
            }
        }
        // 65 fit the bucket, then 262 queue (256 KiB / 1000 B) before the tail drops.
        let burst = deliveries.filter { $0 == 10_000_000 }.count
        #expect(burst == 65)
        #expect(dropped == 400 - 65 - 262)
        // Queued ones leave 100 µs apart.
        let spacing = zip(deliveries.dropFirst(burst + 1), deliveries.dropFirst(burst)).map { $0 - $1 }
        #expect(spacing.allSatisfy { (99_999...100_001).contains($0) }, "\(spacing.prefix(5))")
        #expect(shaper.queuedBytes == 262_000)
        let acceptsBelowLimit = shaper.acceptsStreamData(now: 0)
        #expect(acceptsBelowLimit)
        // A stream chunk is never dropped; it fills the queue to the limit and beyond.
        #expect(shaper.arrive(size: 1000, kind: .stream, now: 0) != .drop(.queueFull))
        let acceptsWhileFull = shaper.acceptsStreamData(now: 0)
        #expect(!acceptsWhileFull)
        // Once the queue has drained, streams are accepted again.
        let acceptsOnceDrained = shaper.acceptsStreamData(now: deliveries.last! - 10_000_000)
        #expect(acceptsOnceDrained)
    }

    @Test("datagram loss follows the rate and the seed; stream chunks are never dropped, only late, in order")
    func lossAndOrder() {
        var shaper = LinkShaper(profile: profile(rttMs: 100, rateMbit: nil, loss: 0.01))
        var lost = 0
        for i in 0..<100_000 {
            if case .drop(.lost) = shaper.arrive(size: 100, kind: .datagram, now: Int64(i) * 1_000) { lost += 1 }
        }
        #expect((800...1_200).contains(lost), "lost \(lost) of 100,000 at 1%")
        var stream = LinkShaper(profile: profile(rttMs: 100, rateMbit: nil, loss: 0.05))
        var last: Int64 = 0
        var late = 0
        for i in 0..<2_000 {
            guard case .deliver(let at) = stream.arrive(size: 1448, kind: .stream, now: Int64(i) * 10_000) else {
                Issue.record("stream chunk \(i) dropped")
                return
            }
            #expect(at >= last)
            if at >= Int64(i) * 10_000 + 150_000_000 { late += 1 }
            last = at
        }
        #expect(stream.retransmitted > 50 && late >= stream.retransmitted)
    }

    @Test("a profile out of range is refused with the value named")
    func validation() {
        var bad = profile(rttMs: 150, rateMbit: 250)
        bad.lossRate = 0.9
        #expect(throws: LinkEmulatorError.self) { try bad.validate() }
        bad = profile(rttMs: 150, rateMbit: 0.001)
        #expect(throws: LinkEmulatorError.self) { try bad.validate() }
        #expect(profile(rttMs: 150, rateMbit: 250).queueLimitBytes == 4_687_500)
    }
}

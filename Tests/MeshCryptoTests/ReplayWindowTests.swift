import MeshCrypto
import Testing

@Suite struct ReplayWindowTests {
    /// The gossip transport's window (was `GossipReplayWindow`): 1024 wide.
    @Test func gossipWidthEdges() {
        var window = ReplayWindow(width: 1024)
        // 0 never; 2 is inside 1024's window; 5000 jumps and clears; 5000 - 3976 == 1024 is outside.
        let sequences: [UInt64] = [0, 1, 1024, 2, 1, 5000, 3976, 3977, 3977, 5001]
        let accepted = sequences.map { window.accept($0) }
        #expect(accepted == [false, true, true, true, false, true, false, true, false, true])
    }

    /// The switch overlay's window (was VirtualSwitch's `ReplayWindow`): 2048 wide.
    @Test func overlayWidthEdges() {
        var window = ReplayWindow(width: 2048)
        do { let ok = window.accept(0); #expect(!ok) }
        do { let ok = window.accept(1); #expect(ok) }
        do { let ok = window.accept(5000); #expect(ok) }
        do { let ok = window.accept(5000 - 2048); #expect(!ok) }
        do { let ok = window.accept(5000 - 2047); #expect(ok) }
        do { let ok = window.accept(5000 - 2047); #expect(!ok) }
        do { let ok = window.accept(4999); #expect(ok) }
        do { let ok = window.accept(7000); #expect(ok) }
        do { let ok = window.accept(5000); #expect(!ok, "still in the window, and seen") }
        do { let ok = window.accept(7000 - 2048); #expect(!ok, "just out of the window") }
        do { let ok = window.accept(7000 - 2047); #expect(ok, "just in, never seen") }
        var fresh = ReplayWindow(width: 2048)
        for counter in stride(from: UInt64(1), through: 10_000, by: 7) { do { let ok = fresh.accept(counter); #expect(ok) } }
        for counter in stride(from: UInt64(8002), through: 10_000, by: 7) { do { let ok = fresh.accept(counter); #expect(!ok) } }
    }

    @Test(arguments: [UInt64(64), 1024, 2048])
    func duplicatesAreRefusedAndCheckChangesNothing(width: UInt64) {
        var window = ReplayWindow(width: width)
        #expect(window.check(7))
        #expect(window.check(7), "check does not record")
        do { let ok = window.accept(7); #expect(ok) }
        #expect(!window.check(7))
        do { let ok = window.accept(7); #expect(!ok) }
        do { let ok = window.accept(3); #expect(ok, "late but inside the window") }
        do { let ok = window.accept(3); #expect(!ok) }
        #expect(window.highest == 7, "a late counter does not move the window")
    }

    @Test(arguments: [UInt64(64), 1024, 2048])
    func tooOldIsRefusedAtExactlyWidthBelowHighest(width: UInt64) {
        var window = ReplayWindow(width: width)
        let top = width * 3 + 5
        do { let ok = window.accept(top); #expect(ok) }
        #expect(!window.check(top - width))
        do { let ok = window.accept(top - width); #expect(!ok) }
        do { let ok = window.accept(top - width + 1); #expect(ok) }
        do { let ok = window.accept(1); #expect(!ok) }
    }

    @Test(arguments: [UInt64(64), 1024, 2048])
    func farAheadClearsTheWholeWindow(width: UInt64) {
        var window = ReplayWindow(width: width)
        for counter in 1...width { do { let ok = window.accept(counter); #expect(ok) } }
        let far = width * 10
        do { let ok = window.accept(far); #expect(ok) }
        // Every slot below `far` inside the window is fresh again, including the ones that
        // share ring positions with the counters accepted before the jump.
        for counter in (far - width + 1)..<far { do { let ok = window.accept(counter); #expect(ok, "counter \(counter)") } }
        do { let ok = window.accept(far); #expect(!ok) }
    }

    @Test(arguments: [UInt64(64), 1024])
    func theRingWrapsWithoutForgettingOrInventing(width: UInt64) {
        var window = ReplayWindow(width: width)
        // Advance in steps that straddle word and ring boundaries; every new counter is
        // fresh, every repeat is refused, and the slot a counter reuses was cleared.
        var counter: UInt64 = 0
        for step in [1, 63, 64, 65, 127, width - 1, width, 3] as [UInt64] {
            counter += step
            do { let ok = window.accept(counter); #expect(ok, "step \(step) to \(counter)") }
            do { let ok = window.accept(counter); #expect(!ok) }
            if counter > width { do { let ok = window.accept(counter - width); #expect(!ok, "ring slot of \(counter) is \(counter - width)") } }
        }
    }

    @Test func counterAtTheTopOfTheRangeDoesNotOverflow() {
        var window = ReplayWindow(width: 1024)
        do { let ok = window.accept(.max - 100); #expect(ok) }
        do { let ok = window.accept(.max); #expect(ok) }
        do { let ok = window.accept(.max); #expect(!ok) }
        do { let ok = window.accept(.max - 1); #expect(ok) }
        do { let ok = window.accept(.max - 100); #expect(!ok) }
        do { let ok = window.accept(.max - 1023); #expect(ok) }
        do { let ok = window.accept(.max - 1024); #expect(!ok) }
    }

    /// Against a set of every accepted counter: the window must answer exactly like it for
    /// counters inside its span, on a seeded random walk with reordering, repeats and jumps.
    @Test(arguments: [UInt64(64), 1024, 2048])
    func matchesAnExactModel(width: UInt64) {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ width
        func next() -> UInt64 {
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var window = ReplayWindow(width: width)
        var seen = Set<UInt64>()
        var highest: UInt64 = 0
        for round in 0..<20_000 {
            let roll = next() % 100
            let candidate: UInt64 = switch roll {
            case 0..<60: highest + 1 + next() % 8                                 // in order, small gaps
            case 60..<90: highest > 0 ? highest - min(highest, next() % (width + 16)) : 0  // late
            case 90..<97: seen.isEmpty ? 1 : highest - min(highest, next() % 4)   // likely repeat
            default: highest + next() % (width * 2)                                // jump
            }
            let expected = candidate != 0 && !seen.contains(candidate) && (candidate > highest || highest - candidate < width)
            #expect(window.check(candidate) == expected, "seed width \(width) round \(round) counter \(candidate)")
            let accepted = window.accept(candidate)
            #expect(accepted == expected, "seed width \(width) round \(round) counter \(candidate)")
            if expected {
                seen.insert(candidate)
                highest = max(highest, candidate)
            }
            #expect(window.highest == highest)
        }
    }
}

/// A sliding anti-replay window over 64-bit counters (RFC 6479): a ring of `width` bits that
/// remembers which of the last `width` counters up to the highest accepted one were seen.
///
/// Counter 0 is never valid (senders start at 1, so 0 means "no counter"). A counter is
/// accepted once if it is above the highest accepted, or less than `width` below it and not
/// accepted before. Only counters of authenticated datagrams MUST be recorded (`accept` after
/// the AEAD tag checked out), or a forger could slide the window and make real datagrams look
/// old; `check` answers the same question without recording, to skip the AEAD for a replay.
///
/// Used by the gossip transport (Protocol.md §4.12.4, 1024 wide) and the switch overlay
/// (Protocol.md §8.3, 2048 wide).
public struct ReplayWindow: Hashable, Sendable {
    /// How many counters, ending at `highest`, the window remembers; counters `width` or more
    /// below `highest` are refused.
    public let width: UInt64
    /// The highest counter accepted so far (0: none).
    public private(set) var highest: UInt64 = 0
    /// Bit `counter % width` is set when `counter` (within the window) was accepted.
    private var bitmap: [UInt64]

    /// An empty window `width` counters wide.
    ///
    /// - Precondition: `width` is a positive multiple of 64 (the ring is made of whole words;
    ///   a caller passing anything else is a programming error, not a runtime condition).
    public init(width: UInt64) {
        precondition(width > 0 && width % 64 == 0, "a replay window is a whole number of 64-bit words")
        self.width = width
        bitmap = [UInt64](repeating: 0, count: Int(width / 64))
    }

    /// Whether `accept(counter)` would succeed; changes nothing.
    public func check(_ counter: UInt64) -> Bool {
        guard counter != 0 else { return false }
        if counter > highest { return true }
        return highest - counter < width && !isSet(counter)
    }

    /// Records `counter`; false (and no change) if it is 0, a repeat, or too old.
    public mutating func accept(_ counter: UInt64) -> Bool {
        guard check(counter) else { return false }
        if counter > highest {
            slide(to: counter)
            highest = counter
        }
        set(counter)
        return true
    }

    /// Forgets the slots of (highest, counter]: they held counters that now fall out of the window.
    private mutating func slide(to counter: UInt64) {
        if counter - highest >= width {
            for index in bitmap.indices { bitmap[index] = 0 }
            return
        }
        // Counts slots rather than comparing to `counter`, so a window that reaches UInt64.max
        // does not overflow.
        var value = highest + 1
        var remaining = counter - highest
        while remaining > 0 {
            // Whole words at once where the range covers them (a jump of up to `width` is common
            // after loss, and clearing bit by bit would cost `width` steps).
            if value % 64 == 0, remaining >= 64 {
                bitmap[word(value)] = 0
                value &+= 64
                remaining -= 64
            } else {
                bitmap[word(value)] &= ~mask(value)
                value &+= 1
                remaining -= 1
            }
        }
    }

    private func word(_ counter: UInt64) -> Int { Int((counter / 64) % UInt64(bitmap.count)) }

    private func mask(_ counter: UInt64) -> UInt64 { 1 << (counter % 64) }

    private func isSet(_ counter: UInt64) -> Bool { bitmap[word(counter)] & mask(counter) != 0 }

    private mutating func set(_ counter: UInt64) { bitmap[word(counter)] |= mask(counter) }
}

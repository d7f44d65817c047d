/// A sliding anti-replay window over one sender session's sequence numbers (RFC 6479 style).
///
/// Sequence 0 is never valid. A sequence is accepted once if it is above the highest accepted,
/// or less than `width` below it and not accepted before. Only sequences of authenticated
/// datagrams are recorded.
struct GossipReplayWindow: Hashable, Sendable {
    /// Sequences more than `width - 1` below the highest accepted are refused.
    static let width: UInt64 = 1024
    private static let words = Int(width / 64)

    /// The highest sequence accepted so far (0: none).
    private(set) var highest: UInt64 = 0
    private var bitmap = [UInt64](repeating: 0, count: words)

    /// Records `sequence`; false (and no change) if it is 0, a repeat, or too old.
    mutating func accept(_ sequence: UInt64) -> Bool {
        guard sequence != 0 else { return false }
        if sequence > highest {
            if sequence - highest >= Self.width {
                for index in bitmap.indices { bitmap[index] = 0 }
            } else {
                // The slots of (highest, sequence] held sequences now out of the window: clear them.
                var value = highest + 1
                while value <= sequence {
                    clear(value)
                    value += 1
                }
            }
            highest = sequence
            set(sequence)
            return true
        }
        guard highest - sequence < Self.width, !isSet(sequence) else { return false }
        set(sequence)
        return true
    }

    private static func slot(_ sequence: UInt64) -> (word: Int, mask: UInt64) {
        (Int((sequence / 64) % UInt64(words)), 1 << (sequence % 64))
    }

    private func isSet(_ sequence: UInt64) -> Bool {
        let (word, mask) = Self.slot(sequence)
        return bitmap[word] & mask != 0
    }

    private mutating func set(_ sequence: UInt64) {
        let (word, mask) = Self.slot(sequence)
        bitmap[word] |= mask
    }

    private mutating func clear(_ sequence: UInt64) {
        let (word, mask) = Self.slot(sequence)
        bitmap[word] &= ~mask
    }
}

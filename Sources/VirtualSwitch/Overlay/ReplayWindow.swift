/// A sliding anti-replay window over 64-bit counters (RFC 6479 style, 2048 counters wide).
///
/// Counter 0 is never valid. A counter is accepted once if it is above the highest seen, or
/// within the window below it and not seen before. Only counters of authenticated datagrams
/// may be recorded (`accept` after the AEAD tag checked out; `check` before, to skip work).
public struct ReplayWindow: Hashable, Sendable {
    /// Counters below `highest - width + 1` are rejected.
    public static let width: UInt64 = 2048
    private static let words = Int(width / 64)

    /// The highest counter accepted so far (0: none).
    public private(set) var highest: UInt64 = 0
    private var bitmap = [UInt64](repeating: 0, count: Self.words)

    /// An empty window.
    public init() {}

    /// Whether `counter` would be accepted (no state change).
    public func check(_ counter: UInt64) -> Bool {
        guard counter != 0 else { return false }
        if counter > highest { return true }
        if highest - counter >= Self.width { return false }
        return !bit(counter)
    }

    /// Records `counter`; false (and no change) if it is a replay or too old.
    public mutating func accept(_ counter: UInt64) -> Bool {
        guard check(counter) else { return false }
        if counter > highest {
            let advance = counter - highest
            if advance >= Self.width {
                for i in bitmap.indices { bitmap[i] = 0 }
            } else {
                // Clear the bits of counters (highest, counter] that now enter the window.
                var value = highest + 1
                while value <= counter {
                    let word = Int((value / 64) % UInt64(Self.words))
                    if value % 64 == 0, counter - value >= 63 {
                        bitmap[word] = 0
                        value += 64
                    } else {
                        bitmap[word] &= ~(1 << (value % 64))
                        value += 1
                    }
                }
            }
            highest = counter
        }
        let word = Int((counter / 64) % UInt64(Self.words))
        bitmap[word] |= 1 << (counter % 64)
        return true
    }

    private func bit(_ counter: UInt64) -> Bool {
        bitmap[Int((counter / 64) % UInt64(Self.words))] & (1 << (counter % 64)) != 0
    }
}

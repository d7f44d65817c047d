/// The destination's reassembly of a striped stream (Protocol.md §6.14), pure: records arrive on
/// their stripes in any interleaving; it hands them back strictly in sequence order, counts what
/// each stripe holds out of order (so the shell stops reading a stripe that runs ahead), and says
/// when the stream is complete.
///
/// No deadlock from pausing: the sender numbers records in the order it writes them and each
/// stripe is a FIFO, so the record awaited next is always the first unread one of some stripe,
/// and that stripe holds nothing out of order (anything it delivered before it has a smaller
/// number): it is never the one over its limit.
public struct StripeReorder<Payload> {
    /// Stripes in the stream.
    public let stripeCount: Int
    /// Bytes one stripe may hold out of order before `overLimit` says stop reading it.
    public let stripeLimit: Int
    /// The sequence number delivered next.
    public private(set) var next: UInt64 = 0
    /// Bytes held out of order, per stripe.
    public private(set) var held: [Int]
    private var pending: [UInt64: (stripe: Int, payload: Payload, bytes: Int)] = [:]
    private var ended: [Bool]

    public init(stripeCount: Int, stripeLimit: Int) {
        self.stripeCount = stripeCount
        self.stripeLimit = stripeLimit
        held = Array(repeating: 0, count: stripeCount)
        ended = Array(repeating: false, count: stripeCount)
    }

    /// Record `sequence` of `bytes` bytes arrived on `stripe`: the payloads now in order, oldest
    /// first (empty while an earlier one is missing).
    public mutating func receive(stripe: Int, sequence: UInt64, payload: Payload, bytes: Int) throws(StripeError) -> [Payload] {
        guard held.indices.contains(stripe) else { throw StripeError("stripe \(stripe) of a stream of \(stripeCount)") }
        guard !ended[stripe] else { throw StripeError("record \(sequence) on stripe \(stripe) after its end") }
        guard sequence >= next, pending[sequence] == nil else { throw StripeError("record \(sequence) arrived twice") }
        guard sequence == next else {
            pending[sequence] = (stripe, payload, bytes)
            held[stripe] += bytes
            return []
        }
        var ready = [payload]
        next += 1
        while let entry = pending.removeValue(forKey: next) {
            held[entry.stripe] -= entry.bytes
            ready.append(entry.payload)
            next += 1
        }
        return ready
    }

    /// Whether `stripe` holds so much out of order that it should not be read for now.
    public func overLimit(_ stripe: Int) -> Bool { held[stripe] >= stripeLimit }
    /// Whether a stripe stopped for `overLimit` may be read again (below half the limit).
    public func canResume(_ stripe: Int) -> Bool { held[stripe] < stripeLimit / 2 }

    /// `stripe` ended in order (its channel closed orderly).
    public mutating func end(stripe: Int) throws(StripeError) {
        guard ended.indices.contains(stripe) else { throw StripeError("stripe \(stripe) of a stream of \(stripeCount)") }
        ended[stripe] = true
        if ended.allSatisfy({ $0 }), !pending.isEmpty {
            throw StripeError("every stripe ended with record \(next) missing and \(pending.count) after it")
        }
    }

    /// Every stripe ended and every record was handed back.
    public var complete: Bool { ended.allSatisfy { $0 } && pending.isEmpty }
}

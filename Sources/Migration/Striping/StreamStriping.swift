public import NIOCore

/// How one QEMU migration connection is striped across several secure channels at distance
/// (Protocol.md §6.14), and the record every stripe carries.
///
/// One TCP connection across a long round trip spends its first seconds ramping its window
/// (slow start, or BBR's startup) and, once full, is limited by one send buffer and one receive
/// window per round trip. A 74 MB guest at 150 ms and 250 Mbit/s is mostly ramp. N connections
/// ramp together (N initial windows per round trip) and a loss on one costs a fraction 1/N of the
/// rate. QEMU 7.2's multifd cannot be used for it (it sends zero pages in full), so the agents
/// stripe the ONE stream: the source cuts what QEMU writes into numbered records and sends each on
/// a stripe that can take it; the destination puts them back in order before QEMU reads them.
public enum StreamStriping {
    /// Below this round trip a stream is not striped (a LAN: one channel, as always), microseconds.
    public static let thresholdMicroseconds: UInt32 = StreamBufferSizing.distanceThresholdMicroseconds
    /// The most stripes a destination accepts for one stream.
    public static let maxStripes = 16
    /// The most stripes hostmesh chooses by itself. Fewer where the stream's buffer is small
    /// (`stripes(rttMicroseconds:rateBytesPerSecond:)`): every stripe adds a handshake, and holds
    /// at least `leastStripeBytes`.
    public static let chosenStripes = maxStripes
    /// The least kernel buffer a stripe gets at either end (`StreamBufferSizing.plan`): past
    /// W / this many stripes (W the stream's buffer), the stripes together hold more than one
    /// stream's buffer, which drains at the switchover (measured at 150 ms: 12 stripes, +212-228
    /// ms of downtime against 8's +110).
    public static let leastStripeBytes = 2 * StreamBufferSizing.shallowBytes
    /// One stripe per this much round trip, microseconds (150 ms: 8 stripes, 40 ms: 2).
    public static let roundTripPerStripeMicroseconds: UInt32 = 20_000
    /// The largest record the source sends, bytes (payload).
    public static let recordPayload = 128 << 10
    /// The largest record a destination accepts, bytes (payload).
    public static let maxRecordPayload = 1 << 20
    /// Record header: sequence (UInt64, big-endian) and payload length (UInt32, big-endian).
    public static let headerBytes = 12
    /// Bytes a destination holds out of order from one stripe before it stops reading that stripe.
    public static let stripeReorderLimit = 4 << 20

    /// The number of stripes for a stream whose round trip is `rttMicroseconds` (0: unknown) across
    /// a link of `rateBytesPerSecond` (nil: `StreamBufferSizing.distanceRate`): one per 20 ms of
    /// round trip, at most as many as the stream's buffer W holds at `leastStripeBytes` each, and
    /// 2 to `chosenStripes` (250 Mbit/s: 8 at 150 ms, 13 at 250 ms).
    public static func stripes(rttMicroseconds: UInt32, rateBytesPerSecond: Int? = nil) -> Int {
        guard rttMicroseconds >= thresholdMicroseconds else { return 1 }
        let byRoundTrip = Int((rttMicroseconds + roundTripPerStripeMicroseconds - 1) / roundTripPerStripeMicroseconds)
        let buffer = StreamBufferSizing.wantedBytes(rttMicroseconds: rttMicroseconds,
                                                    rateBytesPerSecond: rateBytesPerSecond ?? StreamBufferSizing.distanceRate)
        return max(2, min(chosenStripes, byRoundTrip, buffer / leastStripeBytes))
    }

    /// Appends one record (`sequence`, `payload`) to `out`.
    public static func writeRecord(sequence: UInt64, payload: ByteBuffer, into out: inout ByteBuffer) {
        out.writeInteger(sequence)
        out.writeInteger(UInt32(payload.readableBytes))
        var payload = payload
        out.writeBuffer(&payload)
    }

    /// A record read from a stripe.
    public struct Record: Sendable, Equatable {
        public let sequence: UInt64
        public let payload: ByteBuffer
        public init(sequence: UInt64, payload: ByteBuffer) {
            self.sequence = sequence
            self.payload = payload
        }
    }

    /// Takes the next whole record off `buffer`; nil when it does not hold one yet. Throws on a
    /// record of 0 or more than `maxRecordPayload` bytes.
    public static func readRecord(from buffer: inout ByteBuffer) throws(StripeError) -> Record? {
        guard buffer.readableBytes >= headerBytes,
              let sequence = buffer.getInteger(at: buffer.readerIndex, as: UInt64.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt32.self) else { return nil }
        guard length > 0, Int(length) <= maxRecordPayload else {
            throw StripeError("a stripe record of \(length) bytes (1 to \(maxRecordPayload) allowed)")
        }
        guard buffer.readableBytes >= headerBytes + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: headerBytes)
        return Record(sequence: sequence, payload: buffer.readSlice(length: Int(length))!)
    }
}

/// A striped stream broke its rules (a record out of bounds, twice, or missing at the end).
public struct StripeError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

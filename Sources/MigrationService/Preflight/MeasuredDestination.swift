public import ControlAPI

/// What a checklist (or an agent's hello) learnt of a destination address: the host that answered
/// there and the round trip of the channel it answered on. The next migration to that address opens its stream's
/// channels as it starts, before the checklist's own channel has measured anything (§6.3): the
/// stripe count needs the round trip, and the channels need the host they must reach.
struct MeasuredDestination: Sendable {
    /// The host id that answered.
    let host: String
    /// The checklist channel's round trip (`TCPRoundTrip`, Protocol.md §6.11), microseconds; 0 when it could not be read.
    let roundTripMicroseconds: UInt32
    /// When it was measured.
    let measured: ContinuousClock.Instant
    /// The host said it discards Filler frames (`accepts_filler`, Protocol.md §3.2): the stream's
    /// channels opened ahead may send some after message 1.
    var acceptsFiller = false

    /// How long a measurement is used: a route that changed makes only the stripe count and the
    /// padding of one migration off (the checklist measures again), never its safety, since every
    /// channel checks the host it reached.
    static let maxAge: Duration = .seconds(3600)
    /// Addresses remembered at most (a fleet's hosts, with room); past it the oldest is forgotten.
    static let maxEntries = 4096
}

extension MigrationCoordinator {
    /// What the last checklist to `address` measured, if it is recent enough.
    func measuredDestination(_ address: HostPort) -> MeasuredDestination? {
        guard let known = measuredDestinations[address], known.measured.duration(to: .now) < MeasuredDestination.maxAge else { return nil }
        return known
    }

    /// Another channel to `host` at `address` (an agent's hello) measured a round trip of
    /// `roundTrip` microseconds, and the host said whether it accepts filler (`acceptsFiller`): a
    /// first migration there opens its stream early too. A round trip that could not be read (0)
    /// is not remembered: the checklist measures its own.
    public func measured(_ address: HostPort, host: String, roundTrip: UInt32, acceptsFiller: Bool = false) {
        guard roundTrip > 0 else { return }
        remember(address, host: host, roundTrip: roundTrip, acceptsFiller: acceptsFiller)
    }

    /// Remembers that `host` answered at `address` across a round trip of `roundTrip` microseconds,
    /// measured `at`.
    func remember(_ address: HostPort, host: String, roundTrip: UInt32, acceptsFiller: Bool = false, at measured: ContinuousClock.Instant = .now) {
        if measuredDestinations[address] == nil, measuredDestinations.count >= MeasuredDestination.maxEntries,
           let oldest = measuredDestinations.min(by: { $0.value.measured < $1.value.measured })?.key {
            measuredDestinations[oldest] = nil
        }
        measuredDestinations[address] = MeasuredDestination(host: host, roundTripMicroseconds: roundTrip, measured: measured, acceptsFiller: acceptsFiller)
    }
}

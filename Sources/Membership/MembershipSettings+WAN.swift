import MeshTime

extension MembershipSettings {
    /// The WAN profile for a mesh whose members are up to `roundTrip` apart (Protocol.md §4.11.1),
    /// in the manner of memberlist's `DefaultWANConfig` (suspicion multiplier 6, gossip to 4
    /// members every 500 ms, push-pull every 60 s) but with the failure detector's timings
    /// derived from the round trip instead of fixed at memberlist's 3 s / 5 s:
    ///
    /// - `probeTimeout = max(500 ms, 2 RTT + 200 ms)`: a direct ack gets two round trips and a
    ///   margin for jitter before indirect probes start.
    /// - `indirectNackTimeout = max(400 ms, RTT + 250 ms)`: a relay on the requester's side
    ///   needs one full round trip to the target before it may nack.
    /// - `probeInterval = max(1 s, probeTimeout + RTT + indirectNackTimeout + 200 ms)`, rounded
    ///   up to 100 ms: the worst indirect path (ping-req across, nack back across) ends inside
    ///   the period, so a healthy relay's answer is never counted as missing (which would raise
    ///   local health and suspect a live member).
    ///
    /// At 150 ms: probe every 1.3 s, timeout 500 ms, nack 400 ms. At 250 ms: every 1.7 s,
    /// timeout 700 ms, nack 500 ms. Lifeguard's local health multiplier (up to 8) and the
    /// suspicion timeout's shrinking with confirmations work as in the LAN profile. A round trip
    /// at or below 50 ms gives timings no faster than the LAN profile's.
    public static func wan(roundTrip: Duration) -> MembershipSettings {
        let rtt = max(roundTrip, .zero)
        var settings = MembershipSettings()
        settings.probeTimeout = max(.milliseconds(500), rtt * 2 + .milliseconds(200))
        settings.indirectNackTimeout = max(.milliseconds(400), rtt + .milliseconds(250))
        let period = settings.probeTimeout + rtt + settings.indirectNackTimeout + .milliseconds(200)
        let tenths = (period.wholeNanoseconds + 99_999_999) / 100_000_000
        settings.probeInterval = max(.seconds(1), .milliseconds(tenths * 100))
        settings.suspicionMultiplier = 6
        settings.gossipInterval = .milliseconds(500)
        settings.gossipFanout = 4
        settings.pushPullInterval = .seconds(60)
        return settings
    }
}

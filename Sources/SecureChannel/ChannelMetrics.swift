import CoreMetrics

/// What the channel shell reports through swift-metrics (published by the agent's Prometheus
/// endpoint when it has one): handshakes completed, and handshakes that failed, by reason.
enum ChannelMetrics {
    static let handshakes = "hostmesh_channel_handshakes_total"
    static let refusals = "hostmesh_channel_handshake_failures_total"
    static let reauthentications = "hostmesh_channel_reauthentications_total"

    /// A re-authentication in place (Protocol.md §3.9): `direction` is "sent" (this host rotated),
    /// "accepted" or "refused" (the peer's).
    static func reauthenticated(direction: String) {
        CoreMetrics.Counter(label: reauthentications, dimensions: [("direction", direction)]).increment()
    }

    /// A handshake completed: the peer is authenticated.
    static func completed(_ role: SecureChannelHandler.Role) {
        CoreMetrics.Counter(label: handshakes, dimensions: [("role", role.metricLabel)]).increment()
    }

    /// A handshake ended without a channel: refused by this side (`by` = "local") or the peer,
    /// timed out or cut; `reason` is the close code in snake case (Protocol.md §3.8).
    static func failed(_ role: SecureChannelHandler.Role, _ error: SecureChannelError) {
        let reason = error.code.description.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }
        CoreMetrics.Counter(label: refusals, dimensions: [("role", role.metricLabel), ("reason", String(reason)),
                                                          ("by", error.byPeer ? "peer" : "local")]).increment()
    }
}

extension SecureChannelHandler.Role {
    /// "initiator" or "responder".
    var metricLabel: String {
        switch self {
        case .initiator: "initiator"
        case .responder: "responder"
        }
    }
}

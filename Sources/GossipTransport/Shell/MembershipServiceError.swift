public import Membership

/// Everything the membership service can fail at, each with its cause and fix.
public enum MembershipServiceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The service has not been started (`start()` or `run()`).
    case notStarted
    /// The service has stopped; create a new one to take part again.
    case stopped
    /// `run()` was called while another `run()` is active.
    case alreadyRunning
    /// The UDP socket could not be bound.
    case bindFailed(address: String, reason: String)
    /// The bind address is a wildcard and no advertised address was configured.
    case advertisedAddressRequired(bindHost: String)
    /// No seed answered the join (after every retry), or every seed refused.
    case joinFailed([JoinFailure])
    /// A push-pull request could not be decoded.
    case invalidPushPullRequest(String)
    /// A push-pull request names a sender other than the channel's authenticated peer.
    case pushPullSenderMismatch(claimed: MemberID, authenticated: MemberID)
    /// A keyring operation was refused.
    case keyring(GossipKeyringError)

    /// A sentence a person can act on.
    public var description: String {
        switch self {
        case .notStarted:
            return "the membership service is not running yet; start it first"
        case .stopped:
            return "the membership service has stopped or left the mesh; restart the agent to rejoin"
        case .alreadyRunning:
            return "the membership service is already running; run it once (one ServiceGroup entry)"
        case .bindFailed(let address, let reason):
            return "cannot bind the gossip UDP socket to \(address): \(reason); "
                + "is another agent using the port? Choose another gossip port"
        case .advertisedAddressRequired(let host):
            return "the gossip socket binds to the wildcard \(host), which peers cannot reach; "
                + "set the advertised gossip address to this host's reachable IP"
        case .joinFailed(let failures):
            if failures.isEmpty { return "join failed: no seed given" }
            return "join failed: " + failures.map(\.description).joined(separator: "; ")
                + (failures.allSatisfy(\.refused)
                    ? " (check this host's certificate and domain)"
                    : " (check the seed addresses and that their agents run)")
        case .invalidPushPullRequest(let reason):
            return "push-pull request is invalid: \(reason)"
        case .pushPullSenderMismatch(let claimed, let authenticated):
            return "push-pull request claims to come from \(claimed) but the channel authenticated \(authenticated); refused"
        case .keyring(let error):
            return error.description
        }
    }
}

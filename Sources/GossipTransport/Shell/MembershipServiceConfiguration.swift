public import Logging
public import Membership

/// How a `MembershipService` runs: a `Sendable` struct with defaulted fields (loading it from
/// the agent's TOML file is the agent's business). Secrets are not in here: the keyring is
/// handed to the service separately.
public struct MembershipServiceConfiguration: Sendable {
    /// This member's id: the host id of its certificate.
    public var memberID: MemberID
    /// Address the UDP socket binds to.
    public var bindHost: String
    /// Port the UDP socket binds to; 0 picks a free port (see `MembershipService.localAddress()`).
    public var bindPort: Int
    /// Host announced to the other members; nil: `bindHost`, which then MUST NOT be a wildcard
    /// (`0.0.0.0`, `::`), since peers could not reach it.
    public var advertisedHost: String?
    /// Port announced to the other members; nil: the bound port.
    public var advertisedPort: UInt16?
    /// The member's initial metadata (capacity, state, service addresses). Put the secure
    /// channel's address in `channelAddress`: peers dial it for push-pull.
    public var metadata: MemberMetadata
    /// Protocol tunables (Protocol.md §4.11). `datagramOverhead` is set by the service to
    /// `GossipEnvelope.overhead`; `maxDatagramSize` also bounds what is accepted.
    public var settings: MembershipSettings
    /// Seeds `run()` joins through in the background, retrying with `joinRetry`'s backoff
    /// until one answers (without an attempt limit). Empty: the first member, or join later
    /// with `MembershipService.join(seeds:)`.
    public var seeds: [PeerAddress]
    /// Attempts and backoff of `join(seeds:)`.
    public var joinRetry: JoinRetryPolicy
    /// How long a push-pull exchange may take before it counts as failed.
    public var pushPullTimeout: Duration
    /// How long a graceful leave may take to disseminate before the service stops anyway.
    public var leaveTimeout: Duration
    /// At most one log line per drop reason per this interval.
    public var dropLogInterval: Duration
    /// Level of the rate-limited drop lines. Above debug on purpose: forged or replayed
    /// datagrams, or a member with the wrong key, are what an operator needs to see; the rate
    /// limit keeps an attack from flooding the log.
    public var dropLogLevel: Logger.Level
    /// Send and receive buffer size of the UDP socket.
    public var socketBufferBytes: Int
    /// Seed of the core's random choices (probe order, gossip targets); nil: random.
    public var randomSeed: UInt64?
    /// The sender session (nonce prefix, replay ordering); nil: `GossipSession.startingNow()`.
    public var session: GossipSession?
    /// Checks a revocation list (an encoded `RevocationList`) before the core sees it
    /// (Protocol.md §4.14): nil when it verifies against this host's trust anchors, else why
    /// not. A list that does not verify is dropped and counted (`revocation-refused`). Nil
    /// (the default): no list is trusted, every one is refused.
    public var revocationVerifier: (@Sendable (_ list: [UInt8]) -> String?)?
    /// Checks a federation grant (an encoded `FederationGrant`) before the core sees it
    /// (Protocol.md §4.15), as `revocationVerifier` does lists. Nil (the default): every grant
    /// is refused (`federation-grant-refused`).
    public var federationGrantVerifier: (@Sendable (_ grant: [UInt8]) -> String?)?
    /// Signed membership (Protocol.md §4.16): this member signs its claims with its host key
    /// and accepts another member's claim only with that member's signature, checked against
    /// its certificate (received in push-pull states). Nil (the default): unsigned gossip.
    public var signedClaims: SignedClaimsConfiguration?

    /// A configuration with defaults: bind `0.0.0.0:7946` (memberlist's port), default
    /// protocol settings, no seeds.
    public init(
        memberID: MemberID, bindHost: String = "0.0.0.0", bindPort: Int = 7946, advertisedHost: String? = nil,
        metadata: MemberMetadata = MemberMetadata(), settings: MembershipSettings = MembershipSettings(),
        seeds: [PeerAddress] = []
    ) {
        self.memberID = memberID
        self.bindHost = bindHost
        self.bindPort = bindPort
        self.advertisedHost = advertisedHost
        self.advertisedPort = nil
        self.metadata = metadata
        self.settings = settings
        self.seeds = seeds
        self.joinRetry = JoinRetryPolicy()
        self.pushPullTimeout = .seconds(10)
        self.leaveTimeout = .seconds(5)
        self.dropLogInterval = .seconds(10)
        self.dropLogLevel = .notice
        self.socketBufferBytes = 1 << 20
        self.randomSeed = nil
        self.session = nil
        self.revocationVerifier = nil
        self.federationGrantVerifier = nil
        self.signedClaims = nil
    }
}

/// Attempts and exponential backoff of a join.
public struct JoinRetryPolicy: Hashable, Sendable {
    /// Rounds of push-pulls to all seeds; nil: until one answers (or all refuse).
    public var maxAttempts: Int?
    /// Wait after the first failed round; doubled after each further one.
    public var initialBackoff: Duration
    /// Upper bound of the wait between rounds.
    public var maxBackoff: Duration

    /// Defaults: 5 rounds, 1 s, 2 s, 4 s, 8 s apart (capped at 30 s).
    public init(maxAttempts: Int? = 5, initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(30)) {
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    /// The wait after failed round `attempt` (1-based), before jitter.
    public func backoff(afterAttempt attempt: Int) -> Duration {
        var wait = initialBackoff
        for _ in 1..<max(1, attempt) {
            wait *= 2
            if wait >= maxBackoff { return maxBackoff }
        }
        return min(wait, maxBackoff)
    }
}

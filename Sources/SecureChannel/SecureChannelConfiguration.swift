import Foundation
public import MeshCrypto
import NIOConcurrencyHelpers
public import NIOCore
import ShellSupport

/// Everything the channel shell needs besides the socket.
public struct SecureChannelConfiguration: Sendable {
    /// Keys, certificate and trusted domains.
    public var credentials: ChannelCredentials
    /// Peer requirements and cipher preference.
    public var policy: ChannelPolicy
    /// A handshake that has not finished by then is abandoned.
    public var handshakeTimeout: TimeAmount
    /// Each direction switches keys after sealing this many bytes...
    public var rekeyAfterBytes: UInt64
    /// ...or after this much time, whichever comes first.
    public var rekeyAfter: TimeAmount
    /// Current unix time in seconds, for certificate validity (injectable for tests).
    public var unixTime: @Sendable () -> Int64
    /// Makes a fresh ephemeral key pair for one handshake. A responder calls it only once
    /// message 1 passed its cheap checks and the rate limit (Protocol.md §3.3); tests inject a
    /// counting one to prove that garbage never reaches it.
    public var makeEphemeral: @Sendable () -> KeyAgreementKeyPair = { KeyAgreementKeyPair() }
    /// Told of each re-authentication on the channel (Protocol.md §3.9), on its event loop;
    /// none by default (the shell logs them and counts them in metrics either way).
    public var observer: (@Sendable (ReauthenticationEvent) -> Void)?

    /// Defaults: 10 s handshake timeout, rekey every 1 GiB or 10 minutes.
    public init(credentials: ChannelCredentials, policy: ChannelPolicy = ChannelPolicy(), handshakeTimeout: TimeAmount = .seconds(10),
                rekeyAfterBytes: UInt64 = 1 << 30, rekeyAfter: TimeAmount = .minutes(10),
                unixTime: @escaping @Sendable () -> Int64 = SecureChannelConfiguration.systemUnixTime) {
        self.credentials = credentials
        self.policy = policy
        self.handshakeTimeout = handshakeTimeout
        self.rekeyAfterBytes = rekeyAfterBytes
        self.rekeyAfter = rekeyAfter
        self.unixTime = unixTime
    }
}

extension SecureChannelConfiguration {
    /// The system's unix time in seconds.
    @Sendable public static func systemUnixTime() -> Int64 { Int64(Date().timeIntervalSince1970) }
}

/// A rate limiter shared by every connection of one listener (they may run on different event loops).
public final class SharedHandshakeRateLimiter: Sendable {
    private let limiter: NIOLockedValueBox<HandshakeRateLimiter>

    /// Wraps a limiter.
    public init(_ limiter: HandshakeRateLimiter = HandshakeRateLimiter()) {
        self.limiter = NIOLockedValueBox(limiter)
    }

    /// Takes a token for `source` now.
    public func allow(source: String) -> Bool {
        let now = ShellTimeline().now()
        return limiter.withLockedValue { $0.allow(source: source, now: now) }
    }
}

/// A re-authentication on one channel, for `SecureChannelConfiguration.observer`.
public enum ReauthenticationEvent: Sendable {
    /// This side announced its host's new key (its sequence number on the channel).
    case announced(sequence: UInt64, newKey: SigningPublicKey)
    /// The peer re-authenticated with a new certificate, which passed every check.
    case accepted(ChannelReauthentication.Accepted)
}

import MeshTime

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Tunables of the membership core. Defaults follow HashiCorp memberlist's LAN profile.
///
/// Every member of a mesh SHOULD use the same settings; probe interval, probe timeout and the
/// suspicion multipliers in particular decide how quickly a failure is detected and how many
/// false suspicions a lossy network produces (Protocol.md §4.6).
public struct MembershipSettings: Sendable, Equatable {
    /// Period of the failure detector: one member is probed per period (scaled up by the
    /// local health multiplier when this member itself is struggling).
    public var probeInterval: Duration = .seconds(1)

    /// How long a direct ping waits for its ack before indirect probes are sent. Not scaled by
    /// local health (waiting longer does not help a lost UDP packet; the longer period does).
    public var probeTimeout: Duration = .milliseconds(500)

    /// How long a relay waits for the target's ack before answering a ping-request with a
    /// nack. Shorter than `probeTimeout` so the nack reaches the requester within its period.
    public var indirectNackTimeout: Duration = .milliseconds(400)

    /// Number of members asked to probe a target indirectly after a missed direct ack.
    public var indirectChecks: Int = 3

    /// Suspicion timeout = multiplier * max(1, log10(n)) * probe interval, before confirmations.
    public var suspicionMultiplier: Int = 4

    /// The suspicion timeout starts at this multiple of the minimum and shrinks towards the
    /// minimum as independent confirmations arrive (Lifeguard).
    public var suspicionMaxTimeoutMultiplier: Int = 6

    /// An update is piggybacked at most multiplier * ceil(log10(n + 1)) times.
    public var retransmitMultiplier: Int = 4

    /// Lifeguard local health: the score ranges over 0..<this; timeouts scale by (score + 1).
    public var awarenessMaxMultiplier: Int = 8

    /// Period of the dissemination timer that sends pending updates to `gossipFanout` random
    /// members. The timer only runs while updates are pending. Zero disables it (updates then
    /// travel only piggybacked on probes).
    public var gossipInterval: Duration = .milliseconds(200)

    /// Members that receive pending updates on each gossip tick.
    public var gossipFanout: Int = 3

    /// Period of full state exchanges (push-pull) with one random member; above 32 members it
    /// is scaled by ceil(log2(n) - log2(32)) + 1 so that the total rate stays bounded.
    public var pushPullInterval: Duration = .seconds(30)

    /// On each push-pull tick, also try one member marked dead (not left), with probability
    /// dead/alive, so that the two sides of a healed partition find each other again.
    public var reconnectToDeadMembers: Bool = true

    /// How long dead and left members are remembered (to refuse stale alive messages and to
    /// reconnect after a partition) before they are forgotten.
    public var deadMemberRetention: Duration = .seconds(24 * 3600)

    /// Largest UDP payload a member sends, ciphertext included.
    public var maxDatagramSize: Int = 1200

    /// Bytes the shell adds to each encoded datagram when it encrypts it (nonce, tag, key id).
    /// The core keeps the encoded plaintext within `maxDatagramSize - datagramOverhead`.
    public var datagramOverhead: Int = 40

    /// The defaults (memberlist LAN profile).
    public init() {}

    /// Largest encoded plaintext the core produces.
    public var maxEncodedDatagramSize: Int { maxDatagramSize - datagramOverhead }
}

extension MembershipSettings {
    /// Piggyback budget for an update: how many times it is sent before it is dropped.
    /// memberlist: `retransmitMult * ceil(log10(n + 1))`.
    public func retransmitLimit(memberCount n: Int) -> Int {
        let scale = Int(log10Ceil(n + 1))
        return retransmitMultiplier * max(scale, 1)
    }

    /// Minimum suspicion timeout for `n` members: `suspicionMultiplier * max(1, log10(n)) *
    /// probeInterval`, in whole milliseconds.
    public func minimumSuspicionTimeout(memberCount n: Int) -> Duration {
        let nodeScale = max(1.0, log10(Double(max(1, n))))
        let millis = Double(suspicionMultiplier) * (nodeScale * 1000).rounded(.down)
            * Double(probeInterval.wholeNanoseconds) / 1e9
        return .milliseconds(Int64(millis.rounded(.down)))
    }

    /// Push-pull period for `n` members (memberlist's `pushPullScale`).
    public func scaledPushPullInterval(memberCount n: Int) -> Duration {
        let threshold = 32
        guard n > threshold else { return pushPullInterval }
        let multiplier = (log2(Double(n)) - log2(Double(threshold))).rounded(.up) + 1
        return pushPullInterval * Int(multiplier)
    }

    private func log10Ceil(_ value: Int) -> Int {
        var power = 1
        var digits = 0
        while power < value {
            power *= 10
            digits += 1
        }
        return digits
    }
}

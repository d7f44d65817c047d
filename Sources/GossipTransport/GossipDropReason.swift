public import Membership

/// Why an incoming gossip datagram, or one claim or record in it, was dropped (Protocol.md
/// §4.12, §4.16). Every drop is counted under its reason and logged at most once per reason
/// per rate-limit interval.
public enum GossipDropReason: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Larger than the largest datagram a member may send.
    case oversized
    /// Too short to hold a header and a tag, or a header version this member does not know.
    case malformed
    /// Sealed with a key id that is not in the local keyring.
    case unknownKey = "unknown-key"
    /// The authentication tag does not verify: forged, corrupted, or sealed with a different
    /// key that happens to share the key id.
    case forged
    /// Authentic, but already received, too old for the replay window, or from an older
    /// session of its sender.
    case replayed
    /// Authentic, but the plaintext is not a valid gossip datagram (a peer of another version,
    /// or a bug).
    case undecodable
    /// Authentic, but its sender's host or certificate is revoked (Protocol.md §4.14): the
    /// whole datagram is ignored.
    case revoked
    /// A revocation list (piggybacked or in a push-pull state) that does not verify: not
    /// signed by the domain key of the domain it names, altered, or malformed. Only the list
    /// is dropped; the rest of the datagram or state is handled.
    case revocationRefused = "revocation-refused"
    /// A federation grant (piggybacked or in a push-pull state) that does not verify: not a
    /// grant of this member's domain, not signed by its key or an issuer, altered, or
    /// malformed (Protocol.md §4.15). Only the grant is dropped.
    case federationGrantRefused = "federation-grant-refused"
    /// A membership claim (alive, leave, metadata about its author; suspect or dead by an
    /// accuser) with no signature (Protocol.md §4.16). Only the claim is dropped.
    case claimUnsigned = "claim-unsigned"
    /// A membership claim whose signature is not its author's host key: forged, altered, or
    /// signed with another key. Only the claim is dropped.
    case claimForged = "claim-forged"
    /// A membership claim whose author's certificate this member does not hold yet: dropped
    /// (fail closed); a push-pull with the sender brings the certificate and the claim again.
    case claimUnknownSigner = "claim-unknown-signer"
    /// A host certificate in a push-pull state that does not verify against this host's trust
    /// anchors (or is revoked, expired, for another id): not cached, so that member's claims
    /// stay unverifiable.
    case certificateRefused = "certificate-refused"

    /// The drop reason of a claim the core rejected.
    public init(_ rejection: ClaimRejection) {
        switch rejection {
        case .unsigned: self = .claimUnsigned
        case .forged: self = .claimForged
        case .unknownSigner: self = .claimUnknownSigner
        }
    }

    /// The reasons of a single claim dropped by the core.
    public static let claimReasons: Set<GossipDropReason> = [.claimUnsigned, .claimForged, .claimUnknownSigner]

    /// The reason as it appears in logs and metrics.
    public var description: String { rawValue }
}

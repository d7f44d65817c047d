/// Why an incoming gossip datagram was dropped (Protocol.md §4.12). Every drop is counted under
/// its reason and logged at most once per reason per rate-limit interval.
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

    /// The reason as it appears in logs and metrics.
    public var description: String { rawValue }
}

/// Signs this member's claims and checks other members' (Protocol.md §4.16), injected into
/// `MembershipInstance` so the core stays pure: the agent's implementation signs with the host
/// key and verifies against the certificates it holds; the simulator's is a deterministic
/// stand-in with signatures of the real size.
///
/// Calls happen on the core's thread, synchronously, only for claims that would change the
/// local view (a claim already known is never verified twice), and a member signs each claim
/// once (its alive once per incarnation, its metadata once per version), never per datagram.
public protocol ClaimAuthority: Sendable {
    /// This member's signature of `claim` (an Ed25519 signature is 64 bytes).
    func sign(_ claim: [UInt8]) -> [UInt8]
    /// Whether `signature` over `claim` is `signer`'s.
    func verify(_ claim: [UInt8], signature: [UInt8], signer: MemberID) -> ClaimVerdict
}

/// The outcome of checking one signed claim.
public enum ClaimVerdict: Hashable, Sendable {
    /// The signer's key signed it.
    case valid
    /// The signer's key did not sign it (forged, altered, or signed with another key).
    case forged
    /// No certificate of the signer is held yet: nothing to verify with (fail closed).
    case unknownSigner
}

/// Why the core dropped a claim (counted per reason by the shell, `claim-*` drop reasons).
public enum ClaimRejection: String, Hashable, Sendable, CaseIterable {
    /// No signature where one is required.
    case unsigned = "claim-unsigned"
    /// A signature that is not the signer's.
    case forged = "claim-forged"
    /// The signer's certificate is not held yet; the claim returns once it arrived by push-pull.
    case unknownSigner = "claim-unknown-signer"
}

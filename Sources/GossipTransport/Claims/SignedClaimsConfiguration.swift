public import Membership

/// How a `MembershipService` signs this member's claims and checks the certificates other
/// members' claims are verified with (signed membership, Protocol.md §4.16). The agent builds
/// it from the host key and its trust store; the service never sees a key file.
public struct SignedClaimsConfiguration: Sendable {
    /// This host's Ed25519 signature of a claim's bytes, with its current host key.
    public var sign: @Sendable (_ claim: [UInt8]) -> [UInt8]
    /// This host's current certificate, encoded (sent in every push-pull state).
    public var ownCertificate: @Sendable () -> [UInt8]
    /// Checks an encoded host certificate received in a push-pull state: valid now, issued
    /// under a trusted domain, not revoked.
    public var checkCertificate: @Sendable (_ certificate: [UInt8]) -> CertificateCheck

    /// A configuration.
    public init(
        sign: @escaping @Sendable ([UInt8]) -> [UInt8], ownCertificate: @escaping @Sendable () -> [UInt8],
        checkCertificate: @escaping @Sendable ([UInt8]) -> CertificateCheck
    ) {
        self.sign = sign
        self.ownCertificate = ownCertificate
        self.checkCertificate = checkCertificate
    }
}

/// The outcome of checking a member's certificate.
public enum CertificateCheck: Hashable, Sendable {
    /// It certifies `member`'s Ed25519 identity `key` under `serial`.
    case valid(member: MemberID, key: [UInt8], serial: UInt64)
    /// It does not verify, and why.
    case refused(String)
}

public import Membership
import MeshCrypto

/// The agent's `ClaimAuthority` (Protocol.md §4.16): signs with this host's key and verifies a
/// claim with the identity keys of its signer's certificates held in `certificates`.
public struct CertifiedClaimAuthority: ClaimAuthority {
    let signer: @Sendable ([UInt8]) -> [UInt8]
    let certificates: MemberCertificates

    /// An authority signing with `sign` and verifying against `certificates`.
    public init(sign: @escaping @Sendable ([UInt8]) -> [UInt8], certificates: MemberCertificates) {
        self.signer = sign
        self.certificates = certificates
    }

    /// This host's Ed25519 signature of `claim`.
    public func sign(_ claim: [UInt8]) -> [UInt8] {
        signer(claim)
    }

    /// Valid if any held key of `signer` signed it; unknown when none is held.
    public func verify(_ claim: [UInt8], signature: [UInt8], signer: MemberID) -> ClaimVerdict {
        let keys = certificates.keys(of: signer)
        guard !keys.isEmpty else { return .unknownSigner }
        for bytes in keys {
            // A held key was checked to be 32 bytes when its certificate was; a bad one cannot verify.
            guard let key = try? SigningPublicKey(bytes: bytes) else { continue }
            if key.isValidSignature(signature, for: claim) { return .valid }
        }
        return .forged
    }
}

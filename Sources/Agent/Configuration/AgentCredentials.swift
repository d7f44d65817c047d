import Foundation
import MeshIdentity
public import SecureChannel

/// Loads and cross-checks the identity in a state directory:
/// `host.key` (0600), `host.cert` (issued for that key), and `trust/*.pub` (trusted domains,
/// which must include the issuer of `host.cert`).
public enum AgentCredentials {
    /// Channel credentials for the host whose state lives in `directory`, checked at `now`.
    public static func load(stateDirectory directory: String, now: Int64 = SecureChannelConfiguration.systemUnixTime()) throws -> ChannelCredentials {
        let layout = StateDirectory(directory)
        try finishRotation(layout)
        let identity = try HostIdentity.load(fromDirectory: directory)
        let certPath = layout.hostCertificate
        guard FileManager.default.fileExists(atPath: certPath) else {
            throw AgentError.identity("no certificate at \(certPath): have a domain certify this host with `hostmesh domain certify --host-pub \(layout.hostPublicKeys) --out \(certPath)`")
        }
        let certificate = try HostCertificate.load(certPath)
        guard certificate.hostID == identity.hostID,
              [UInt8](certificate.body.identityKey) == identity.signingKey.publicKey.bytes else {
            // The key's fingerprint only decorates this error; "?" when it does not decode.
            throw AgentError.identity("\(certPath) certifies \(certificate.hostID) with key \((try? certificate.identityKey().fingerprint) ?? "?"), but host.key is \(identity.hostID) with key \(identity.signingKey.publicKey.fingerprint): re-certify this host's host.pub")
        }
        let trust = try TrustStore.load(fromDirectory: layout.trustDirectory)
        // Domain keys learned from rotations (Protocol.md §2.10) count for this host's own certificate too.
        try DomainKeyStore.installStored(into: trust, stateDirectory: directory)
        do { try trust.verify(certificate, now: now) } catch {
            throw AgentError.identity("this host's own certificate does not verify against \(layout.trustDirectory): \(error). Install the domain's domain.pub with `hostmesh keys trust`")
        }
        return ChannelCredentials(identity: identity, certificate: certificate, trust: trust)
    }

    /// A key rotation that stopped after writing `host.key.next` (Protocol.md §2.8): when
    /// `host.cert` already certifies the next key, the move is finished (the key renamed into
    /// place); otherwise the new key never got its certificate and is discarded.
    static func finishRotation(_ layout: StateDirectory) throws {
        let next = layout.hostKey + ".next"
        guard FileManager.default.fileExists(atPath: next) else { return }
        let pending = try HostIdentity.load(keyFile: next)
        let certificate = try? HostCertificate.load(layout.hostCertificate) // a missing certificate is reported by `load`
        if let certificate, ChannelCredentials.certifies(certificate, pending) {
            guard rename(next, layout.hostKey) == 0 else {
                throw AgentError.identity("cannot finish the key rotation: rename \(next) to \(layout.hostKey): \(String(cString: strerror(errno)))")
            }
            try pending.publicKeys.save(layout.hostPublicKeys)
        } else {
            try FileManager.default.removeItem(atPath: next)
        }
    }
}

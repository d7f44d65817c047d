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
        do { try trust.verify(certificate, now: now) } catch {
            throw AgentError.identity("this host's own certificate does not verify against \(layout.trustDirectory): \(error). Install the domain's domain.pub with `hostmesh keys trust`")
        }
        return ChannelCredentials(identity: identity, certificate: certificate, trust: trust)
    }
}

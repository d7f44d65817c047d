import Foundation
import Logging
import MeshIdentity
import MeshWire
import SecureChannel

/// The issuer's side of certificate renewal (Protocol.md §2.7): on a host that holds an issuer
/// certificate (`<state>/issuer.cert`, made by `hostmesh domain delegate`), answers a host's
/// `certificate_renewal` with a new certificate for the keys its channel authenticated. Every
/// other host refuses with the reason. Each refusal names what was wrong.
struct CertificateDesk: Sendable {
    /// This host as an issuer, or nil.
    let issuer: CertificateIssuer?
    /// Lifetime of the certificates it issues, in seconds (clipped by the delegation).
    let lifetime: Int64
    let logger: Logger
    var unixTime: @Sendable () -> Int64 = SecureChannelConfiguration.systemUnixTime

    /// Loads `issuer.cert` from the state directory when there is one; it must delegate to this
    /// host's own key (else the agent refuses to start, naming both keys).
    static func load(stateDirectory: String, identity: HostIdentity, lifetime: Int64, logger: Logger) throws -> CertificateDesk {
        let path = stateDirectory + "/issuer.cert"
        guard FileManager.default.fileExists(atPath: path) else { return CertificateDesk(issuer: nil, lifetime: lifetime, logger: logger) }
        let issuer = try CertificateIssuer(certificate: try IssuerCertificate.load(path), identity: identity)
        logger.info("this host is an issuer", metadata: [
            "mesh.domain": "\(issuer.certificate.domain)", "mesh.issuer.serial": "\(issuer.certificate.serial)",
            "mesh.issuer.not_after": "\(issuer.certificate.body.notAfter)", "mesh.certificate_lifetime_s": "\(lifetime)"])
        return CertificateDesk(issuer: issuer, lifetime: lifetime, logger: logger)
    }

    /// The certificate `peer` asked for, or a refusal (`SecureChannelError`, code 1, the reason).
    func renew(_ request: Hostmesh_V1_CertificateRenewal, for peer: PeerIdentity) throws -> Hostmesh_V1_AgentEnvelope {
        let certificate = try issue(request, for: peer.certificate)
        var reply = Hostmesh_V1_AgentEnvelope()
        reply.certificateRenewed.certificate = certificate.wire
        return reply
    }

    /// The certificate asked for by the host that `held` authenticated (on its channel).
    func issue(_ request: Hostmesh_V1_CertificateRenewal, for held: HostCertificate) throws(SecureChannelError) -> HostCertificate {
        let peer = (hostID: held.hostID, domain: held.domain)
        func refuse(_ reason: String) -> SecureChannelError {
            logger.warning("certificate renewal refused", metadata: ["mesh.peer": "\(peer.hostID)", "mesh.reason": "\(reason)"])
            return SecureChannelError(.protocolViolation, "certificate renewal refused: " + reason)
        }
        guard let issuer else { throw refuse("\(issuer?.identity.hostID ?? "this host") is not an issuer (it holds no issuer.cert)") }
        guard request.hostID == peer.hostID else {
            throw refuse("renewal asked for host \(request.hostID) by \(peer.hostID): a host renews only its own certificate")
        }
        guard peer.domain == issuer.certificate.domain else {
            throw refuse("\(peer.hostID) is in domain \(peer.domain); this issuer certifies hosts of \(issuer.certificate.domain) only")
        }
        let keys: HostPublicKeys
        if request.identityKey == held.body.identityKey, request.staticKey == held.body.staticKey, request.rotation.isEmpty {
            do {
                keys = HostPublicKeys(hostID: peer.hostID, identityKey: try held.identityKey(), staticKey: try held.staticKey())
            } catch { throw refuse("\(error)") }
        } else {
            // New keys (Protocol.md §2.8): only on a rotation record from the keys the channel authenticated.
            guard !request.rotation.isEmpty else {
                throw refuse("the keys asked for are not the keys \(peer.hostID)'s certificate holds; new keys need a rotation record signed by both keys")
            }
            let record: RotationRecord
            do {
                record = try RotationRecord(serialized: [UInt8](request.rotation))
                try record.verify(against: held, now: unixTime())
            } catch { throw refuse("\(error)") }
            guard request.identityKey == record.body.newIdentityKey, request.staticKey == record.body.newStaticKey else {
                throw refuse("the keys asked for are not the rotation record's new keys")
            }
            keys = record.newKeys
            logger.info("key rotation accepted", metadata: [
                "mesh.peer": "\(peer.hostID)", "mesh.old_key": "\((try? held.identityKey().fingerprint) ?? "?")", // the fingerprint only decorates the log
                "mesh.new_key": "\(keys.identityKey.fingerprint)"])
        }
        let certificate = issuer.certify(keys, now: unixTime(), lifetime: lifetime)
        logger.info("certificate renewed", metadata: [
            "mesh.peer": "\(peer.hostID)", "mesh.cert_serial": "\(certificate.serial)", "mesh.not_after": "\(certificate.body.notAfter)"])
        return certificate
    }
}

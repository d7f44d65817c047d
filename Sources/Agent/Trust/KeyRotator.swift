import ControlAPI
import Foundation
import Logging
import MeshIdentity
import MeshWire
import SecureChannel

/// Rotates this host's identity key (Protocol.md §2.8): a new key pair, a rotation record signed
/// by the old and the new key, a certificate for the new keys from an issuer that checked the
/// record, then the switch: files first (`host.key.next`, `host.cert`, `host.key`, crash-safe:
/// an agent that finds `host.key.next` matching `host.cert` finishes the move at start), then
/// every handshake from now on. Channels already open keep their sessions.
actor KeyRotator {
    let credentials: ChannelCredentials
    let issuers: IssuerClient
    let stateDirectory: StateDirectory
    let logger: Logger
    var unixTime: @Sendable () -> Int64 = SecureChannelConfiguration.systemUnixTime
    /// Set while a rotation runs: a second one is refused, not interleaved.
    private var rotating = false

    init(credentials: ChannelCredentials, issuers: IssuerClient, stateDirectory: StateDirectory, logger: Logger) {
        self.credentials = credentials
        self.issuers = issuers
        self.stateDirectory = stateDirectory
        self.logger = logger
    }

    /// Rotates now; returns what changed, or throws a `ControlError` naming why not.
    func rotate() async throws(ControlError) -> String {
        guard !rotating else { throw .conflict("a key rotation is already under way on this host") }
        rotating = true
        defer { rotating = false }
        let old = credentials.identity
        let held = credentials.certificate
        if issuers.desk.issuer != nil {
            throw .conflict("this host is an issuer: its delegation names its current key. Rotate it by delegating to its new host.pub after `hostmesh keys init` on a fresh state, or have the domain re-certify it")
        }
        let new: HostIdentity
        do { new = try HostIdentity(hostID: old.hostID) } catch { throw .failed("cannot make a key: \(error)") }
        let record = RotationRecord(from: old, to: new, domain: held.domain, now: unixTime())
        var request = Hostmesh_V1_CertificateRenewal()
        request.hostID = old.hostID
        request.identityKey = Data(new.signingKey.publicKey.bytes)
        request.staticKey = Data(new.staticKey.publicKey.bytes)
        request.rotation = Data(record.serialized)
        let certificate: HostCertificate
        let source: String
        switch await issuers.request(request) {
        case .success(let (issued, from)): (certificate, source) = (issued, from)
        case .failure(let failure): throw .unavailable("no issuer certified the new key, the old key stays: \(failure)")
        }
        do { try credentials.trust.verify(certificate, now: unixTime(), requiredDomain: held.domain) } catch {
            throw .failed("the certificate \(source) issued for the new key does not verify, the old key stays: \(error)")
        }
        guard ChannelCredentials.certifies(certificate, new) else {
            throw .failed("\(source) certified other keys than the new ones; the old key stays")
        }
        // Files: the new key beside the old, the certificate, then the key by rename.
        let next = stateDirectory.hostKey + ".next"
        do {
            try new.saveKey(to: next, overwrite: true)
            try certificate.save(stateDirectory.hostCertificate)
            guard rename(next, stateDirectory.hostKey) == 0 else {
                throw IdentityError.fileWriteFailed(path: stateDirectory.hostKey, reason: String(cString: strerror(errno)))
            }
            try new.publicKeys.save(stateDirectory.hostPublicKeys)
        } catch {
            logger.critical("key rotation: the new key and certificate could not all be written; the agent keeps the old key until restart",
                            metadata: ["error": "\(error)"])
            throw .failed("cannot write the new key files: \(error)")
        }
        // Every open channel re-authenticates in place with the new key (Protocol.md §3.9).
        guard credentials.replace(identity: new, certificate: certificate, record: record) else {
            throw .failed("the new certificate does not certify the new key (a bug); restart the agent to use the files")
        }
        await issuers.membership.keyRotated()
        let text = "rotated the key of \(old.hostID): \(old.signingKey.publicKey.fingerprint) -> \(new.signingKey.publicKey.fingerprint), certificate serial \(certificate.serial) from \(source), valid until \(certificate.body.notAfter)"
        logger.notice("host key rotated", metadata: [
            "mesh.old_key": "\(old.signingKey.publicKey.fingerprint)", "mesh.new_key": "\(new.signingKey.publicKey.fingerprint)",
            "mesh.cert_serial": "\(certificate.serial)", "mesh.source": "\(source)"])
        return text
    }
}

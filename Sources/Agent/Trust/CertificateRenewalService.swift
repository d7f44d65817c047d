import ControlAPI
import Foundation
import Logging
import Membership
import MeshIdentity
import MeshWire
import SecureChannel
import ServiceLifecycle

/// Renews this host's certificate at half its lifetime (Protocol.md §2.7), as SPIRE does: from
/// itself when it is an issuer, else from any live member that is one (tried in random order;
/// the others refuse). The new certificate is verified, written to `host.cert` and presented by
/// every handshake from then on; open channels keep going. A failed round is retried every
/// tenth of the time left (at least 1 s, at most 60 s) until the certificate expires.
struct CertificateRenewalService: Service {
    let credentials: ChannelCredentials
    let desk: CertificateDesk
    let membership: AgentMembership
    let certificatePath: String
    let logger: Logger
    var unixTime: @Sendable () -> Int64 = SecureChannelConfiguration.systemUnixTime

    /// When `certificate` is due: half-way through its validity.
    static func renewalTime(of certificate: HostCertificate) -> Int64 {
        certificate.body.notBefore + (certificate.body.notAfter - certificate.body.notBefore) / 2
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let certificate = credentials.certificate
                let now = unixTime()
                let due = Self.renewalTime(of: certificate)
                if now < due {
                    // Cancelled: the loop ends.
                    try? await Task.sleep(for: .seconds(min(due - now, 60)))
                    continue
                }
                if await renewOnce() { continue }
                let left = max(certificate.body.notAfter - now, 0)
                if left == 0 {
                    logger.error("this host's certificate has expired: other hosts refuse it until an issuer renews it or the domain re-certifies it",
                                 metadata: ["mesh.not_after": "\(certificate.body.notAfter)"])
                }
                try? await Task.sleep(for: .seconds(min(max(left / 10, 1), 60))) // cancelled: the loop ends
            }
        }
    }

    /// One renewal round; true when a new certificate is in use.
    func renewOnce() async -> Bool {
        let current = credentials.certificate
        var request = Hostmesh_V1_CertificateRenewal()
        request.hostID = credentials.identity.hostID
        request.identityKey = current.body.identityKey
        request.staticKey = current.body.staticKey
        switch await IssuerClient(credentials: credentials, desk: desk, membership: membership, logger: logger).request(request) {
        case .success(let (certificate, source)):
            return install(certificate, from: source)
        case .failure(let failure):
            logger.warning("certificate renewal found no issuer this round", metadata: [
                "mesh.not_after": "\(current.body.notAfter)", "mesh.tried": "\(failure)"])
            return false
        }
    }

    /// Checks a renewed certificate, writes it and presents it from the next handshake on.
    func install(_ certificate: HostCertificate, from source: String) -> Bool {
        do { try credentials.trust.verify(certificate, now: unixTime(), requiredDomain: credentials.certificate.domain) } catch {
            logger.error("a renewed certificate does not verify; keeping the current one", metadata: ["mesh.source": "\(source)", "error": "\(error)"])
            return false
        }
        guard credentials.replaceCertificate(certificate) else {
            logger.error("a renewed certificate is for other keys or another host; keeping the current one", metadata: ["mesh.source": "\(source)"])
            return false
        }
        do { try certificate.save(certificatePath) } catch {
            logger.error("cannot write the renewed certificate; it is used until restart", metadata: ["error": "\(error)"])
        }
        logger.info("certificate renewed", metadata: [
            "mesh.source": "\(source)", "mesh.cert_serial": "\(certificate.serial)", "mesh.not_after": "\(certificate.body.notAfter)"])
        return true
    }
}

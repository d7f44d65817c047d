import ControlAPI
import Foundation
import Logging
import Membership
import MeshIdentity
import MeshWire
import SecureChannel

/// Asks an issuer for a certificate (Protocol.md §2.7): this host itself when it is one, else
/// the live members in random order, over a `renew` channel authenticated with the current
/// credentials, until one answers.
struct IssuerClient: Sendable {
    let credentials: ChannelCredentials
    let desk: CertificateDesk
    let membership: AgentMembership
    let logger: Logger

    /// Why no issuer answered: each member tried and its reason.
    struct NoIssuer: Error, CustomStringConvertible {
        let tried: [String]
        var description: String { tried.isEmpty ? "no live member to ask" : tried.joined(separator: "; ") }
    }

    /// The certificate and who issued it, or every refusal.
    func request(_ request: Hostmesh_V1_CertificateRenewal) async -> Result<(HostCertificate, String), NoIssuer> {
        var tried: [String] = []
        if desk.issuer != nil {
            do { return .success((try desk.issue(request, for: credentials.certificate), "this host (an issuer)")) } catch {
                tried.append("this host: \(error)")
            }
        }
        for member in await membership.members().shuffled() where !member.local && member.status == "alive" {
            guard let channel = member.channel, let address = try? HostPort(parsing: channel) else { continue } // no channel address yet: skip it
            do {
                let bytes = try await AgentMembership.exchange(PeerAddress(host: address.host, port: UInt16(address.port)), purpose: "renew",
                                                               credentials: credentials, logger: logger) {
                    $0.certificateRenewal = request
                } answer: { body in
                    guard case .certificateRenewed(let renewed) = body else { return nil }
                    return try? renewed.certificate.serializedBytes() // a decoded message re-encodes; nil is refused by `exchange`
                }
                return .success((try HostCertificate(serialized: bytes), member.host))
            } catch {
                tried.append("\(member.host): \(error)")
            }
        }
        return .failure(NoIssuer(tried: tried))
    }
}

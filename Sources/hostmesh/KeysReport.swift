import Foundation
import MeshCrypto
import MeshIdentity
import ControlAPI

/// What `hostmesh keys … --json` prints (Deploy/OPERATING.md, "The command line as JSON").
enum KeysReport {
    /// `keys init`: the new key, and where it and the public keys were written.
    struct Created: Encodable {
        var host: String
        /// The identity key's fingerprint.
        var identityKey: String
        var keyFile: String
        var publicKeysFile: String
    }

    /// `keys trust`: the domain now trusted.
    struct Anchor: Encodable {
        var domain: String
        /// The domain key's fingerprint.
        var key: String
    }

    /// `keys show`: the host's keys, its certificate (absent: none, or `certificateProblem`
    /// says why it does not load) and the domains it trusts.
    struct Keys: Encodable {
        struct Certificate: Encodable {
            var domain: String
            var serial: UInt64
            /// Validity, RFC 3339 UTC.
            var notBefore: String
            var notAfter: String
        }

        var host: String
        var identityKey: String
        /// The static (handshake) key, first 8 bytes in hex.
        var staticKey: String
        var certificateFile: String
        var certificate: Certificate?
        var certificateProblem: String?
        var trusts: [Anchor]

        init(identity: HostIdentity, state: StateDirectory) throws {
            host = identity.hostID
            identityKey = identity.signingKey.publicKey.fingerprint
            staticKey = Hex.encodeShort(identity.staticKey.publicKey.bytes)
            certificateFile = state.hostCertificate
            if FileManager.default.fileExists(atPath: state.hostCertificate) {
                do {
                    let cert = try HostCertificate.load(state.hostCertificate)
                    certificate = Certificate(domain: cert.domain, serial: cert.serial, notBefore: format(cert.body.notBefore), notAfter: format(cert.body.notAfter))
                } catch {
                    // There but unusable: said, as the text output says it (the agent refuses it too).
                    certificateProblem = "\(error)"
                }
            }
            trusts = try TrustStore.load(fromDirectory: state.trustDirectory).anchors.values.sorted { $0.name < $1.name }
                .map { Anchor(domain: $0.name, key: $0.key.fingerprint) }
        }
    }
}

import MeshCrypto
import MeshIdentity
import Testing

/// Protocol.md §14.1: a certificate with a non-critical extension, and the same with the extension
/// critical, which a verifier refuses (§2.2). Checked against the code and against libsodium.
@Suite struct CertificateVectorTests {
    let vector: Vector
    init() throws { vector = try ProtocolDocument.load().vector("14.1 Certificate") }

    @Test func theCodeIssuesTheDocumentedCertificate() throws {
        let domain = try VectorInputs.domain()
        let host = try VectorInputs.identity(VectorInputs.initiatorHost, seed: VectorInputs.initiatorSeed)
        #expect(try vector.bytes("domain_seed") == VectorInputs.domainSeed && vector.bytes("host_seed") == VectorInputs.initiatorSeed)
        expectHex(domain.signingKey.publicKey.bytes, vector, "domain_key", by: "the code")
        expectHex(host.signingKey.publicKey.bytes, vector, "identity_key", by: "the code")
        expectHex(host.staticKey.publicKey.bytes, vector, "static_key", by: "the code")
        let certificate = try VectorInputs.initiatorCertificate()
        expectHex(certificate.bodyBytes, vector, "body", by: "the code")
        expectHex(certificate.signature, vector, "signature", by: "the code")
        expectHex(certificate.serialized, vector, "certificate", by: "the code")
        let critical = try VectorInputs.initiatorCertificate(critical: true)
        expectHex(critical.bodyBytes, vector, "critical_body", by: "the code")
        expectHex(critical.serialized, vector, "critical_certificate", by: "the code")
    }

    @Test func libsodiumComputesTheDocumentedCertificate() throws {
        let domain = Libsodium.signingKeyPair(seed: try vector.bytes("domain_seed"))
        let host = Libsodium.signingKeyPair(seed: try vector.bytes("host_seed"))
        expectHex(domain.public, vector, "domain_key", by: "libsodium")
        expectHex(host.public, vector, "identity_key", by: "libsodium")
        expectHex(Libsodium.x25519Public(fromEd25519: host.public), vector, "static_key", by: "libsodium (public key map)")
        expectHex(Libsodium.x25519Base(Libsodium.x25519Secret(fromEd25519: host.secret)), vector, "static_key", by: "libsodium (secret key map)")
        for (critical, bodyLabel, certificateLabel) in [(false, "body", "certificate"), (true, "critical_body", "critical_certificate")] {
            let body = VectorInputs.referenceBody(host: VectorInputs.initiatorHost, identityKey: host.public,
                                                  staticKey: Libsodium.x25519Public(fromEd25519: host.public), domainKey: domain.public,
                                                  serial: 1, extensionCritical: critical)
            expectHex(body, vector, bodyLabel, by: "the §13.1 field numbers")
            let reference = VectorInputs.referenceCertificate(body: body)
            expectHex(reference.certificate, vector, certificateLabel, by: "libsodium")
            #expect(Libsodium.verify(reference.signature, Array("hostmesh-cert-v1".utf8) + (try vector.bytes(bodyLabel)), publicKey: domain.public))
        }
        expectHex(VectorInputs.referenceCertificate(body: try vector.bytes("body")).signature, vector, "signature", by: "libsodium")
    }

    @Test func theCodeAcceptsTheNonCriticalAndRefusesTheCriticalExtension() throws {
        let trust = TrustStore(anchors: [try VectorInputs.domain().trustAnchor], clockSkewSeconds: 0)
        let certificate = try HostCertificate(serialized: try vector.bytes("certificate"))
        #expect(try trust.verify(certificate, now: VectorInputs.now).name == "lab")
        #expect(certificate.hostID == "node-a" && certificate.serial == 1 && certificate.body.extensions.count == 1)
        let critical = try HostCertificate(serialized: try vector.bytes("critical_certificate"))
        #expect(throws: IdentityError.unknownCriticalExtension(VectorInputs.extensionID)) {
            try trust.verify(critical, now: VectorInputs.now)
        }
    }
}

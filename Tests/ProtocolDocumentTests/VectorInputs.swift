import MeshCrypto
import MeshIdentity
import MeshWire

/// The fixed inputs of the vectors in Protocol.md §14 (the document states them in prose).
enum VectorInputs {
    static let domainName = "lab"
    static let domainSeed = Array(UInt8(0x00)...0x1f)
    static let initiatorHost = "node-a"
    static let initiatorSeed = Array(UInt8(0x20)...0x3f)
    static let responderHost = "node-b"
    static let responderSeed = Array(UInt8(0x40)...0x5f)
    static let initiatorEphemeral = Array(UInt8(0x60)...0x7f)
    static let responderEphemeral = Array(UInt8(0x80)...0x9f)
    static let notBefore: Int64 = 1_700_000_000
    static let notAfter: Int64 = 1_800_000_000
    /// "now" for every check that needs a clock.
    static let now: Int64 = 1_750_000_000
    static let extensionID = "example.org/comment"
    static let extensionValue = Array("hi".utf8)

    static func domain() throws -> DomainAuthority {
        try DomainAuthority(name: domainName, signingKey: SigningKeyPair(seed: SecretBytes(domainSeed)))
    }

    static func identity(_ host: String, seed: [UInt8]) throws -> HostIdentity {
        try HostIdentity(hostID: host, signingKey: SigningKeyPair(seed: SecretBytes(seed)))
    }

    static func commentExtension(critical: Bool) -> Hostmesh_V1_Extension {
        var e = Hostmesh_V1_Extension()
        e.id = extensionID
        e.critical = critical
        e.value = .init(extensionValue)
        return e
    }

    /// node-a's certificate: serial 1, one non-critical extension (§14.1).
    static func initiatorCertificate(critical: Bool = false) throws -> HostCertificate {
        try domain().certify(identity(initiatorHost, seed: initiatorSeed).publicKeys, serial: 1, notBefore: notBefore, notAfter: notAfter,
                             extensions: [commentExtension(critical: critical)])
    }

    /// node-b's certificate: serial 2, no extension (§14.2).
    static func responderCertificate() throws -> HostCertificate {
        try domain().certify(identity(responderHost, seed: responderSeed).publicKeys, serial: 2, notBefore: notBefore, notAfter: notAfter)
    }

    /// The CertificateBody written field by field from Protocol.md §13.1, for libsodium's side.
    static func referenceBody(host: String, identityKey: [UInt8], staticKey: [UInt8], domainKey: [UInt8], serial: UInt64,
                              extensionCritical: Bool?) -> [UInt8] {
        var w = ProtobufWriter()
        w.uint(1, 1)
        w.string(2, host)
        w.string(3, domainName)
        w.bytes(4, domainKey)
        w.bytes(5, identityKey)
        w.bytes(6, staticKey)
        w.int(7, notBefore)
        w.int(8, notAfter)
        w.uint(9, serial)
        if let critical = extensionCritical {
            var e = ProtobufWriter()
            e.string(1, extensionID)
            e.bool(2, critical)
            e.bytes(3, extensionValue)
            w.bytes(15, e.bytes, always: true)
        }
        return w.bytes
    }

    /// Certificate{body, signature}, signed with libsodium.
    static func referenceCertificate(body: [UInt8]) -> (signature: [UInt8], certificate: [UInt8]) {
        let domain = Libsodium.signingKeyPair(seed: domainSeed)
        let signature = Libsodium.sign(Array("hostmesh-cert-v1".utf8) + body, secretKey: domain.secret)
        var w = ProtobufWriter()
        w.bytes(1, body)
        w.bytes(2, signature)
        return (signature, w.bytes)
    }
}

/// Compares a computed value with the document's, naming the computed hex on a mismatch (so a
/// deliberate change of the protocol shows what to paste into Protocol.md).
func expectHex(_ computed: [UInt8], _ vector: Vector, _ label: String, by who: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let documented = (try? vector.bytes(label)) ?? []
    #expect(computed == documented, "\(vector.title): \(label) computed by \(who) is \(HexText.encode(computed))", sourceLocation: sourceLocation)
}

import Testing

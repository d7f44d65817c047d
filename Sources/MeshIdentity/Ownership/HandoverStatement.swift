public import MeshWire
import Foundation
import MeshCrypto

/// The previous owner's signed statement that it handed a VM over (Protocol.md §6.12): at a
/// migration's commit the source signs "VM v, owned by me at epoch e, goes to D at e + 1".
/// Carried as evidence with D's ownership record, it lets a host holding a copy at epoch e
/// check that the record's epoch was really handed over, instead of believing any certified
/// member that claims a higher epoch.
///
/// The raw signed bytes are kept, so verification never depends on re-encoding.
public struct HandoverStatement: Sendable, Equatable {
    /// The format this software writes and understands.
    public static let currentFormat: UInt32 = 1
    /// Domain-separation prefix of the signed message.
    public static let signatureContext = Array("hostmesh-handover-v1".utf8)

    /// The encoded `TrustHandoverBody`, exactly as signed.
    public let bodyBytes: [UInt8]
    /// Ed25519 by the from host's identity key over `signatureContext || bodyBytes`.
    public let signature: [UInt8]
    /// The decoded body.
    public let body: Hostmesh_V1_TrustHandoverBody
    /// The from host's certificate, which certifies the signing key.
    public let certificate: HostCertificate

    /// The VM.
    public var vmID: String { body.vmID }
    /// Who handed it over, and at which epoch.
    public var from: OwnershipPoint { OwnershipPoint(owner: body.fromHost, epoch: body.fromEpoch) }
    /// Who got it, at which epoch.
    public var to: OwnershipPoint { OwnershipPoint(owner: body.toHost, epoch: body.toEpoch) }

    /// Decodes and checks the structure (not the signature: see `TrustStore.verify(_: HandoverStatement)`).
    public init(serialized: [UInt8]) throws(IdentityError) {
        let wire: Hostmesh_V1_TrustHandoverStatement
        do { wire = try Hostmesh_V1_TrustHandoverStatement(serializedBytes: serialized) } catch {
            throw .evidenceRefused("the handover statement does not decode: \(error)")
        }
        let body: Hostmesh_V1_TrustHandoverBody
        do { body = try Hostmesh_V1_TrustHandoverBody(serializedBytes: wire.body) } catch {
            throw .evidenceRefused("the handover statement's body does not decode: \(error)")
        }
        guard body.format == Self.currentFormat else { throw .evidenceRefused("handover statement format \(body.format) is not supported") }
        guard wire.signature.count == 64 else { throw .evidenceRefused("the handover statement's signature is not 64 bytes") }
        guard !body.vmID.isEmpty, !body.migrationID.isEmpty else { throw .evidenceRefused("the handover statement names no VM or no migration") }
        guard body.fromEpoch >= 1, body.toEpoch == body.fromEpoch + 1 else {
            throw .evidenceRefused("a handover goes from epoch e to e + 1; this one says \(body.fromEpoch) to \(body.toEpoch)")
        }
        guard body.fromHost != body.toHost else { throw .evidenceRefused("the handover statement hands \(body.vmID) from \(body.fromHost) to itself") }
        do {
            try IdentityName.validate(body.fromHost)
            try IdentityName.validate(body.toHost)
        } catch { throw .evidenceRefused("the handover statement's hosts: \(error)") }
        let certificate: HostCertificate
        do { certificate = try HostCertificate(serialized: [UInt8](wire.certificate)) } catch {
            throw .evidenceRefused("the handover statement's certificate: \(error)")
        }
        bodyBytes = [UInt8](wire.body)
        signature = [UInt8](wire.signature)
        self.body = body
        self.certificate = certificate
    }

    /// The serialized wire form, exactly as signed.
    public var serialized: [UInt8] {
        var wire = Hostmesh_V1_TrustHandoverStatement()
        wire.body = Data(bodyBytes)
        wire.signature = Data(signature)
        wire.certificate = Data(certificate.serialized)
        return try! wire.serializedBytes() // a message of bytes fields always encodes
    }

    /// The source's statement at commit: `identity` (certified by `certificate`) hands `vm` at
    /// `epoch` to `destination` at `epoch + 1` in `migration`.
    public static func sign(vm: String, epoch: UInt64, to destination: String, migration: String, at signedAt: Int64,
                            identity: HostIdentity, certificate: HostCertificate) throws(IdentityError) -> HandoverStatement {
        var body = Hostmesh_V1_TrustHandoverBody()
        body.format = currentFormat
        body.vmID = vm
        body.fromHost = identity.hostID
        body.fromEpoch = epoch
        body.toHost = destination
        body.toEpoch = epoch + 1
        body.migrationID = migration
        body.signedAt = signedAt
        let bytes: [UInt8] = try! body.serializedBytes() // a well-formed message always encodes
        var wire = Hostmesh_V1_TrustHandoverStatement()
        wire.body = Data(bytes)
        wire.signature = Data(identity.signingKey.sign(signatureContext + bytes))
        wire.certificate = Data(certificate.serialized)
        return try HandoverStatement(serialized: try! wire.serializedBytes())
    }
}

extension TrustStore {
    /// Verifies a handover statement (Protocol.md §6.12): its certificate verifies under this
    /// store (a trusted domain, not revoked) at the statement's `signed_at`, names the from host,
    /// and its identity key verifies the signature.
    public func verify(_ statement: HandoverStatement) throws(IdentityError) {
        let certificate = statement.certificate
        guard certificate.hostID == statement.body.fromHost else {
            throw .evidenceRefused("the handover statement of \(statement.body.fromHost) carries the certificate of \(certificate.hostID)")
        }
        do { try verify(certificate, now: statement.body.signedAt) } catch {
            throw .evidenceRefused("the certificate of \(statement.body.fromHost) in the handover statement: \(error)")
        }
        let key: SigningPublicKey
        do { key = try SigningPublicKey(bytes: [UInt8](certificate.body.identityKey)) } catch {
            throw .evidenceRefused("the certificate of \(statement.body.fromHost) names no usable identity key")
        }
        guard key.isValidSignature(statement.signature, for: HandoverStatement.signatureContext + statement.bodyBytes) else {
            throw .evidenceRefused("the handover statement's signature does not verify with \(statement.body.fromHost)'s key (altered, or signed by another key)")
        }
    }
}

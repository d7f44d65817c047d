public import MeshIdentity

/// A host key rotation as the channels of that host learn of it: the new identity, the
/// certificate for it and the record signed by the old and the new key (Protocol.md §2.8).
public struct KeyRotationNotice: Sendable {
    /// The new keys.
    public let identity: HostIdentity
    /// The certificate for the new keys.
    public let certificate: HostCertificate
    /// The record linking the old identity key to the new one.
    public let record: RotationRecord

    /// Bundles a rotation.
    public init(identity: HostIdentity, certificate: HostCertificate, record: RotationRecord) {
        self.identity = identity
        self.certificate = certificate
        self.record = record
    }
}

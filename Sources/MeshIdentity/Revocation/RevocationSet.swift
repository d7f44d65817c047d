public import MeshWire

/// The revocations in force: the newest verified list of each domain (Protocol.md §2.5).
/// A pure value; `RevocationRegistry` shares one between every handshake of a process.
public struct RevocationSet: Sendable, Equatable {
    /// The newest verified list per domain.
    public private(set) var lists: [String: RevocationList] = [:]

    /// No revocations.
    public init() {}

    /// What installing a list did.
    public enum Outcome: Sendable, Equatable {
        /// The list is newer than the one held for its domain: it replaced it.
        case installed
        /// A list of this version or a newer one is already held: ignored.
        case stale(held: UInt64)
    }

    /// Installs `list` if it is newer than the list held for its domain. The caller MUST have
    /// verified it (`TrustStore.verify(_:)`).
    @discardableResult
    public mutating func install(_ list: RevocationList) -> Outcome {
        if let held = lists[list.domain], held.version >= list.version { return .stale(held: held.version) }
        lists[list.domain] = list
        return .installed
    }

    /// The version held for `domain`, 0 for none.
    public func version(of domain: String) -> UInt64 { lists[domain]?.version ?? 0 }

    /// The entry revoking `certificate`, if any.
    public func entry(revoking certificate: HostCertificate) -> Hostmesh_V1_RevocationEntry? {
        lists[certificate.domain]?.entry(revoking: certificate)
    }

    /// Every host id revoked as a whole (not by serial), in `domain` or in every domain.
    public func revokedHosts(in domain: String? = nil) -> Set<String> {
        var hosts = Set<String>()
        for (name, list) in lists where domain == nil || name == domain {
            for entry in list.entries where !entry.hostID.isEmpty { hosts.insert(entry.hostID) }
        }
        return hosts
    }
}

/// A host's gossip keyring with the version of the signed record it came from (Protocol.md
/// §4.17): pure state, no I/O. A record is adopted only when it is newer than the one held, and
/// only when the host holds (or is handed) the secret of every key it names, each matching its
/// commitment. The signature is checked before (`TrustStore.verify`), not here.
public struct VersionedGossipKeyring: Sendable {
    /// What adopting a manifest did.
    public enum Adoption: Sendable, Equatable {
        /// The manifest replaced the keyring; `previous` is the version held before.
        case adopted(previous: UInt64)
        /// Not newer than the held version: nothing changed (older records never undo newer ones).
        case stale(held: UInt64)
    }

    /// The keys in force: the primary seals, every key opens.
    public private(set) var keyring: GossipKeyring
    /// What the held record says; version 0 (built from `keyring`) before any record.
    public private(set) var manifest: GossipKeyringManifest

    /// An unmanaged keyring (version 0), as generated or handed over at join.
    public init(unmanaged keyring: GossipKeyring) {
        self.keyring = keyring
        manifest = GossipKeyringManifest(of: keyring, version: 0)
    }

    /// The held version (0: no record).
    public var version: UInt64 { manifest.version }

    /// Adopts `manifest` if it is newer, with the secrets the host holds plus `secrets` (handed
    /// beside the record). Refused, and nothing changes, when a named key's secret is missing or
    /// does not match its commitment, or the primary is not named.
    @discardableResult
    public mutating func adopt(_ manifest: GossipKeyringManifest, secrets: [GossipKey]) throws(GossipKeyringError) -> Adoption {
        guard manifest.version > self.manifest.version else { return .stale(held: self.manifest.version) }
        var primary: GossipKey?
        var others: [GossipKey] = []
        for entry in manifest.entries {
            let candidates = secrets.filter { $0.id == entry.id } + [keyring.key(entry.id)].compactMap { $0 }
            guard !candidates.isEmpty else { throw .missingSecret(entry.id) }
            guard let key = candidates.first(where: { $0.commitment == entry.commitment }) else { throw .commitmentMismatch(entry.id) }
            if entry.id == manifest.primary { primary = key } else { others.append(key) }
        }
        guard let primary else { throw .unknownKey(manifest.primary) }
        let next = try GossipKeyring(primary: primary, others: others)
        let previous = self.manifest.version
        keyring = next
        self.manifest = manifest
        return .adopted(previous: previous)
    }

    /// The secrets of the held manifest's keys, in its entry order (what goes beside the record).
    public var secretsInManifestOrder: [GossipKey] {
        manifest.entries.compactMap { keyring.key($0.id) }
    }
}

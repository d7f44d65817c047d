public import MeshCrypto
import NIOConcurrencyHelpers

/// The domain key rotations this process holds (Protocol.md §2.10), shared by every copy of a
/// `TrustStore` like its revocations: a rotation installed once adds its new key as a trust anchor
/// of its domain for every later verification, and a retirement removes the old key, even when
/// a `trust/<name>.pub` file still names it.
public final class DomainKeyRegistry: Sendable {
    /// What `install` did.
    public enum Outcome: Sendable, Equatable {
        /// The record is newer than any held for its domain and now in force.
        case installed
        /// A record of the same or a higher version is held for its domain: nothing changed.
        case stale
    }

    struct State {
        /// Every record installed, by domain, in version order: the chain a peer needs.
        var chains: [String: [DomainKeyRotation]] = [:]
        /// Keys a rotation added, by key.
        var added: [SigningPublicKey: DomainTrustAnchor] = [:]
        /// Keys a rotation retired, with their domain.
        var retired: [SigningPublicKey: String] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// An empty registry.
    public init() {}

    /// The anchors in force given the `configured` ones (the trust directory's): configured and
    /// added keys, without the retired ones.
    public func anchors(configured: [SigningPublicKey: DomainTrustAnchor]) -> [SigningPublicKey: DomainTrustAnchor] {
        state.withLockedValue { state in
            guard !state.added.isEmpty || !state.retired.isEmpty else { return configured }
            var anchors = configured.merging(state.added) { configured, _ in configured }
            for key in state.retired.keys { anchors[key] = nil }
            return anchors
        }
    }

    /// Every retired key with its domain.
    public var retired: [SigningPublicKey: String] { state.withLockedValue { $0.retired } }

    /// The domain of `key` if a rotation retired it.
    public func retiredDomain(of key: SigningPublicKey) -> String? { state.withLockedValue { $0.retired[key] } }

    /// Every record held, domain by domain, each domain's in version order (to hand to a peer).
    public var records: [DomainKeyRotation] {
        state.withLockedValue { state in state.chains.keys.sorted().flatMap { state.chains[$0] ?? [] } }
    }

    /// The highest version held for `domain` (0: none).
    public func version(of domain: String) -> UInt64 { state.withLockedValue { $0.chains[domain]?.last?.version ?? 0 } }

    /// Checks `record` against the anchors in force given `configured` (Protocol.md §2.10 steps
    /// 2-4) and installs it when it is newer than the one held for its domain. Throws, naming
    /// what is wrong, when it is refused; nothing changes then.
    @discardableResult
    public func install(_ record: DomainKeyRotation, configured: [SigningPublicKey: DomainTrustAnchor]) throws(IdentityError) -> Outcome {
        let result = state.withLockedValue { state -> Result<Outcome, IdentityError> in
            do throws(IdentityError) { return .success(try Self.install(record, into: &state, configured: configured)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    static func install(_ record: DomainKeyRotation, into state: inout State, configured: [SigningPublicKey: DomainTrustAnchor]) throws(IdentityError) -> Outcome {
        let held = state.chains[record.domain]?.last?.version ?? 0
        guard record.version > held else { return .stale }
        var anchors = configured.merging(state.added) { configured, _ in configured }
        for key in state.retired.keys { anchors[key] = nil }
        let known = [record.oldKey, record.newKey].filter { anchors[$0]?.name == record.domain }
        guard !known.isEmpty else {
            if state.retired[record.oldKey] != nil {
                throw .domainRotationRefused("its old key \(record.oldKey.fingerprint) is retired: a retired domain key vouches for nothing")
            }
            let trusted = anchors.values.contains { $0.name == record.domain }
            throw .domainRotationRefused(trusted
                ? "neither its old key \(record.oldKey.fingerprint) nor its new key \(record.newKey.fingerprint) is a key of domain \(record.domain) this host trusts"
                : "it is for domain \"\(record.domain)\", which this host does not trust")
        }
        try record.verifySignatures()
        let newAnchor = DomainTrustAnchor(name: record.domain, key: record.newKey)
        state.added[record.newKey] = newAnchor
        if record.oldRetired {
            state.retired[record.oldKey] = record.domain
            state.added[record.oldKey] = nil
        }
        state.chains[record.domain, default: []].append(record)
        return .installed
    }
}

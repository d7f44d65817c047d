public import MeshCrypto
import NIOConcurrencyHelpers

/// The federation grants in force in one process, shared by every handshake and every open
/// cross-domain channel (Protocol.md §2.9): each `TrustStore` copy holds the same registry, so a
/// grant installed once is checked by the next handshake anywhere, and a channel to a host of a
/// federated domain is told to close once its grant is revoked, replaced by one for another key,
/// or expires (`sweep(now:)`).
public final class FederationRegistry: Sendable {
    /// A cross-domain channel's peer domain key, watched until the channel ends.
    public struct Token: Hashable, Sendable { let id: UInt64 }

    private struct Watcher {
        let peerKey: SigningPublicKey
        let onCut: @Sendable (String) -> Void
    }

    private struct State {
        var set = FederationSet()
        var watchers: [UInt64: Watcher] = [:]
        var nextID: UInt64 = 1
    }

    private let state = NIOLockedValueBox(State())
    /// Tolerated clock difference, as for certificates (§2.3).
    public let skew: Int64

    /// An empty registry.
    public init(skew: Int64 = 60) { self.skew = skew }

    /// The grants held now.
    public var current: FederationSet { state.withLockedValue { $0.set } }

    /// The grant naming `key` as its peer domain's key (one in force at `now` first).
    public func grant(forPeerKey key: SigningPublicKey, at now: Int64) -> FederationGrant? {
        state.withLockedValue { $0.set.grant(forPeerKey: key, at: now, skew: skew) }
    }

    /// Installs a verified grant (if newer than the one held for its key), then cuts the
    /// watched channels whose peer key no grant lets in any more at `now`, calling each
    /// watcher once, outside the lock, with the reason. Returns the outcome and how many
    /// channels it cut.
    @discardableResult
    public func install(_ grant: FederationGrant, now: Int64) -> (outcome: FederationSet.Outcome, cut: Int) {
        let (outcome, fired) = state.withLockedValue { state -> (FederationSet.Outcome, [(Watcher, String)]) in
            let outcome = state.set.install(grant)
            guard outcome == .installed else { return (outcome, []) }
            return (outcome, Self.takeCut(&state, now: now, skew: skew))
        }
        for (watcher, reason) in fired { watcher.onCut(reason) }
        return (outcome, fired.count)
    }

    /// Cuts the watched channels whose grant expired by `now` (run about once a second, so an
    /// expiry closes them within a few seconds). Returns how many it cut.
    @discardableResult
    public func sweep(now: Int64) -> Int {
        let fired = state.withLockedValue { state in Self.takeCut(&state, now: now, skew: skew) }
        for (watcher, reason) in fired { watcher.onCut(reason) }
        return fired.count
    }

    /// Watches a cross-domain channel whose peer's domain key is `peerKey`: `onCut` is called once
    /// with the reason when no grant lets that key in any more. Returns nil (and calls nothing)
    /// when none does already.
    public func watch(peerKey: SigningPublicKey, now: Int64, onCut: @escaping @Sendable (String) -> Void) -> Token? {
        state.withLockedValue { state -> Token? in
            guard let grant = state.set.grant(forPeerKey: peerKey, at: now, skew: skew), grant.isInForce(at: now, skew: skew) else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.watchers[id] = Watcher(peerKey: peerKey, onCut: onCut)
            return Token(id: id)
        }
    }

    /// Stops watching (the channel ended). Unknown tokens are ignored.
    public func unwatch(_ token: Token) {
        _ = state.withLockedValue { $0.watchers.removeValue(forKey: token.id) }
    }

    /// Channels watched now (for tests and metrics).
    public var watchedCount: Int { state.withLockedValue { $0.watchers.count } }

    /// Removes and returns the watchers no grant in force covers, each with the reason.
    private static func takeCut(_ state: inout State, now: Int64, skew: Int64) -> [(Watcher, String)] {
        var fired: [(Watcher, String)] = []
        for (id, watcher) in state.watchers.sorted(by: { $0.key < $1.key }) {
            let grant = state.set.grant(forPeerKey: watcher.peerKey, at: now, skew: skew)
            if let grant, grant.isInForce(at: now, skew: skew) { continue }
            let reason = grant?.refusal(at: now, skew: skew) ?? "no grant names domain key \(watcher.peerKey.fingerprint) any more"
            fired.append((watcher, reason))
            state.watchers[id] = nil
        }
        return fired
    }
}

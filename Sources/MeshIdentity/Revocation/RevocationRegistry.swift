import NIOConcurrencyHelpers
public import MeshWire

/// The revocations in force in one process, shared by every handshake and every open channel:
/// each `TrustStore` copy holds the same registry, so a list installed once is checked by the
/// next handshake anywhere (Protocol.md §2.3 step 8), and the channels open to a host it
/// revokes are told to close (`watch`).
public final class RevocationRegistry: Sendable {
    /// A channel's peer, watched until the channel ends.
    public struct Token: Hashable, Sendable { let id: UInt64 }

    private struct Watcher {
        let certificate: HostCertificate
        let onRevoked: @Sendable (Hostmesh_V1_RevocationEntry) -> Void
    }

    private struct State {
        var set = RevocationSet()
        var watchers: [UInt64: Watcher] = [:]
        var nextID: UInt64 = 1
    }

    private let state = NIOLockedValueBox(State())

    /// An empty registry.
    public init() {}

    /// The revocations in force now.
    public var current: RevocationSet { state.withLockedValue { $0.set } }

    /// The entry revoking `certificate`, if any.
    public func entry(revoking certificate: HostCertificate) -> Hostmesh_V1_RevocationEntry? {
        state.withLockedValue { $0.set.entry(revoking: certificate) }
    }

    /// Installs a verified list (if newer than the one held for its domain) and calls the
    /// watchers of the peers it revokes, outside the lock, once each (they are removed).
    /// Returns the outcome and the certificates of the watched peers it cut off.
    @discardableResult
    public func install(_ list: RevocationList) -> (outcome: RevocationSet.Outcome, cut: [HostCertificate]) {
        let (outcome, fired) = state.withLockedValue { state -> (RevocationSet.Outcome, [(Watcher, Hostmesh_V1_RevocationEntry)]) in
            let outcome = state.set.install(list)
            guard outcome == .installed else { return (outcome, []) }
            var fired: [(Watcher, Hostmesh_V1_RevocationEntry)] = []
            for (id, watcher) in state.watchers {
                guard let entry = list.entry(revoking: watcher.certificate) else { continue }
                fired.append((watcher, entry))
                state.watchers[id] = nil
            }
            return (outcome, fired)
        }
        for (watcher, entry) in fired { watcher.onRevoked(entry) }
        return (outcome, fired.map(\.0.certificate))
    }

    /// Watches a peer authenticated by `certificate`: `onRevoked` is called once if a list
    /// revoking it is installed later. Returns nil (and calls nothing) when it is already revoked.
    public func watch(_ certificate: HostCertificate, onRevoked: @escaping @Sendable (Hostmesh_V1_RevocationEntry) -> Void) -> Token? {
        state.withLockedValue { state -> Token? in
            guard state.set.entry(revoking: certificate) == nil else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.watchers[id] = Watcher(certificate: certificate, onRevoked: onRevoked)
            return Token(id: id)
        }
    }

    /// Stops watching (the channel ended). Unknown tokens are ignored.
    public func unwatch(_ token: Token) {
        _ = state.withLockedValue { $0.watchers.removeValue(forKey: token.id) }
    }

    /// Peers watched now (for tests and metrics).
    public var watchedCount: Int { state.withLockedValue { $0.watchers.count } }
}

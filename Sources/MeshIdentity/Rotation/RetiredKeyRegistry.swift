public import MeshCrypto
import NIOConcurrencyHelpers

/// The host keys this process knows were rotated away, shared by every copy of a `TrustStore`
/// (Protocol.md §3.9): a key is still accepted for a grace period after its host rotated, then
/// every verification refuses it (*key retired*, close code 31) and the channels still
/// authenticated by it are told to close (`watch`).
public final class RetiredKeyRegistry: Sendable {
    /// A channel's peer key, watched until the channel ends or moves to a new key.
    public struct Token: Hashable, Sendable { let id: UInt64 }

    /// One retired key: from when on it is refused.
    public struct Retirement: Sendable, Equatable {
        /// The host whose key it was.
        public let hostID: String
        /// The retired identity key.
        public let key: SigningPublicKey
        /// Unix seconds from which the key is refused (its rotation seen, plus the grace period).
        public let refusedFrom: Int64

        /// A retirement as it was recorded (`restore`, after a restart).
        public init(hostID: String, key: SigningPublicKey, refusedFrom: Int64) {
            self.hostID = hostID
            self.key = key
            self.refusedFrom = refusedFrom
        }
    }

    private struct Key: Hashable { let hostID: String; let key: SigningPublicKey }
    private struct Watcher { let key: Key; let onRetired: @Sendable (Retirement) -> Void }
    private struct State {
        var retired: [Key: Retirement] = [:]
        var watchers: [UInt64: Watcher] = [:]
        var nextID: UInt64 = 1
        var recorder: (@Sendable (Retirement) -> Void)?
    }

    private let grace: NIOLockedValueBox<Int64>
    private let state = NIOLockedValueBox(State())

    /// An empty registry with a grace period of `graceSeconds` (default one hour).
    public init(graceSeconds: Int64 = 3_600) {
        self.grace = NIOLockedValueBox(max(0, graceSeconds))
    }

    /// How long a retired key is still accepted, in seconds (`key_grace_period`): applies to
    /// keys retired from now on.
    public var graceSeconds: Int64 {
        get { grace.withLockedValue { $0 } }
        set { grace.withLockedValue { $0 = max(0, newValue) } }
    }

    /// Records that `hostID` rotated away from `key` at unix time `now`: refused from `now +
    /// grace`. A key already retired keeps its earlier deadline. Watchers of that key are called
    /// (outside the lock) with the retirement, once each, and removed.
    @discardableResult
    public func retire(hostID: String, key: SigningPublicKey, now: Int64) -> Retirement {
        let grace = graceSeconds
        let entry = Key(hostID: hostID, key: key)
        let (retirement, fired, recorder) = state.withLockedValue { state -> (Retirement, [Watcher], (@Sendable (Retirement) -> Void)?) in
            let known = state.retired[entry]
            let retirement = known ?? Retirement(hostID: hostID, key: key, refusedFrom: now + grace)
            state.retired[entry] = retirement
            var fired: [Watcher] = []
            for (id, watcher) in state.watchers where watcher.key == entry {
                fired.append(watcher)
                state.watchers[id] = nil
            }
            return (retirement, fired, known == nil ? state.recorder : nil)
        }
        recorder?(retirement)
        for watcher in fired { watcher.onRetired(retirement) }
        return retirement
    }

    /// Puts back a retirement recorded before (an agent's restart): the key stays refused from
    /// the same time. One already known keeps the earlier deadline. Calls no recorder.
    public func restore(_ retirement: Retirement) {
        let entry = Key(hostID: retirement.hostID, key: retirement.key)
        state.withLockedValue { state in
            if let known = state.retired[entry], known.refusedFrom <= retirement.refusedFrom { return }
            state.retired[entry] = retirement
        }
    }

    /// Calls `recorder` (outside the lock, on the retiring thread, possibly an event loop: it
    /// MUST NOT block) with every key retired from now on, once each, so it can be kept durably.
    /// Replaces an earlier recorder.
    public func record(with recorder: @escaping @Sendable (Retirement) -> Void) {
        state.withLockedValue { $0.recorder = recorder }
    }

    /// The retirement of `key` of `hostID`, if it was rotated away (refused or still in grace).
    public func retirement(hostID: String, key: SigningPublicKey) -> Retirement? {
        state.withLockedValue { $0.retired[Key(hostID: hostID, key: key)] }
    }

    /// Watches the key a channel's peer authenticated with: `onRetired` is called once when it
    /// is retired later. Returns nil (and calls nothing) when it already is: the caller reads
    /// `retirement(hostID:key:)` instead.
    public func watch(hostID: String, key: SigningPublicKey, onRetired: @escaping @Sendable (Retirement) -> Void) -> Token? {
        let entry = Key(hostID: hostID, key: key)
        return state.withLockedValue { state -> Token? in
            guard state.retired[entry] == nil else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.watchers[id] = Watcher(key: entry, onRetired: onRetired)
            return Token(id: id)
        }
    }

    /// Stops watching. Unknown tokens are ignored.
    public func unwatch(_ token: Token) {
        _ = state.withLockedValue { $0.watchers.removeValue(forKey: token.id) }
    }

    /// Keys retired so far (for tests and the operator).
    public var all: [Retirement] { state.withLockedValue { Array($0.retired.values) } }
}

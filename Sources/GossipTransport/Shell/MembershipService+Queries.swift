public import Membership
import NIOCore

// What the agent reads and changes while the service runs: members, counters, metadata,
// keyring, events.
extension MembershipService {
    /// Every member this service knows, itself first, then by id. Empty before `start()`.
    public func members() async -> [MemberSnapshot] {
        // Fails only once the service stopped: it knows no members then.
        (try? await runtime.onLoop { state -> [MemberSnapshot] in
            guard let instance = state.instance else { return [] }
            let now = self.now().nanosecondsSinceOrigin
            func snapshot(_ member: Member, isLocal: Bool) -> MemberSnapshot {
                let changed = state.lastUpdate[member.id] ?? member.statusChangedAt.nanosecondsSinceOrigin
                return MemberSnapshot(member: member, isLocal: isLocal, sinceLastUpdate: .nanoseconds(max(0, now - changed)))
            }
            return [snapshot(instance.localMember, isLocal: true)]
                + instance.knownMembers.map { snapshot($0, isLocal: false) }
        }) ?? []
    }

    /// The traffic and drop counters.
    public func counters() async -> GossipCounters {
        // Fails only once the service stopped (its loop is gone): nothing more is counted.
        (try? await runtime.onLoop { state in state.counters }) ?? GossipCounters()
    }

    /// The gossip address announced to peers (nil before `start()`).
    public func localAddress() async -> PeerAddress? {
        // Fails only once the service stopped: it has no address then.
        try? await runtime.onLoop { state in state.localAddress }
    }

    /// Replaces this member's metadata and gossips it; returns it with the version the core
    /// gave it (one above the previous; the `version` passed in is ignored). Before `start()`
    /// it becomes the metadata the member starts with.
    @discardableResult
    public func updateMetadata(_ metadata: MemberMetadata) async throws(MembershipServiceError) -> MemberMetadata {
        try await runtime.onLoop { state throws(MembershipServiceError) -> MemberMetadata in
            switch state.phase {
            case .stopped:
                throw .stopped
            case .idle, .starting:
                state.metadata = metadata
                return metadata
            case .running:
                guard let directives = state.instance?.updateMetadata(metadata, now: self.now()),
                    let updated = state.instance?.localMetadata
                else { throw .notStarted }
                state.lastUpdate[self.configuration.memberID] = self.now().nanosecondsSinceOrigin
                self.execute(directives, state)
                return updated
            }
        }
    }

    /// A stream of membership events from now on; each call makes a new stream (any number of
    /// subscribers). The newest 4096 events are kept for a subscriber that falls behind. The
    /// stream ends when the service stops.
    public func events() -> AsyncStream<MembershipEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: MembershipEvent.self, bufferingPolicy: .bufferingNewest(4096))
        eventLoop.execute {
            let state = self.runtime.state
            guard state.phase != .stopped else {
                continuation.finish()
                return
            }
            let id = state.nextSubscriberID
            state.nextSubscriberID += 1
            state.subscribers[id] = continuation
            continuation.onTermination = { _ in
                self.eventLoop.execute { self.runtime.state.subscribers[id] = nil }
            }
        }
        return stream
    }

    // MARK: Keyring

    /// The current keyring (with secrets, to be written back to the key file after a change).
    public func keyring() async throws(MembershipServiceError) -> GossipKeyring {
        try await runtime.onLoop { state in state.keyring }
    }

    /// Installs `key` for opening (rotation step 1, on every member).
    public func installKey(_ key: GossipKey) async throws(MembershipServiceError) {
        try await changeKeyring { ring throws(GossipKeyringError) in try ring.install(key) }
    }

    /// Makes the installed key `id` the sealing key (rotation step 2, on every member).
    public func useKey(_ id: GossipKeyID) async throws(MembershipServiceError) {
        try await changeKeyring { ring throws(GossipKeyringError) in try ring.use(id) }
    }

    /// Removes key `id` (rotation step 3, on every member, once no member seals with it).
    public func removeKey(_ id: GossipKeyID) async throws(MembershipServiceError) {
        try await changeKeyring { ring throws(GossipKeyringError) in try ring.remove(id) }
    }

    /// Replaces the whole keyring (the key file was edited and reloaded).
    public func replaceKeyring(_ keyring: GossipKeyring) async throws(MembershipServiceError) {
        try await changeKeyring { ring in ring = keyring }
    }

    private func changeKeyring(
        _ change: @escaping @Sendable (inout GossipKeyring) throws(GossipKeyringError) -> Void
    ) async throws(MembershipServiceError) {
        try await runtime.onLoop { state throws(MembershipServiceError) in
            var ring = state.keyring
            do throws(GossipKeyringError) {
                try change(&ring)
            } catch {
                throw .keyring(error)
            }
            state.keyring = ring
            self.logger.debug("gossip keyring changed", metadata: ["mesh.gossip.keys": "\(ring)"])
        }
    }
}

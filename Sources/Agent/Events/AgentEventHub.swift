import ControlAPI
import Foundation
import Synchronization

/// Where the agent's parts publish what happens (members coming and going, migration phases)
/// and where `hostmesh events` subscribers read it. Publishing never waits: a subscriber that
/// falls behind keeps the newest 1024 events.
final class AgentEventHub: Sendable {
    let hostID: String
    private let subscribers = Mutex<(next: UInt64, all: [UInt64: AsyncStream<AgentEvent>.Continuation])>((0, [:]))

    init(hostID: String) { self.hostID = hostID }

    /// Subscribers now (a subscriber that stopped reading is gone).
    var subscriberCount: Int { subscribers.withLock { $0.all.count } }

    /// Events from now on, until the subscriber stops reading.
    func subscribe() -> AsyncStream<AgentEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: AgentEvent.self, bufferingPolicy: .bufferingNewest(1024))
        let id = subscribers.withLock { state in
            let id = state.next
            state.next += 1
            state.all[id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] _ in self?.subscribers.withLock { _ = $0.all.removeValue(forKey: id) } }
        return stream
    }

    /// Sends `kind` with its details to every subscriber, stamped now.
    func publish(_ kind: String, peer: String? = nil, vm: String? = nil, vmID: String? = nil, migration: String? = nil,
                 progress: MigrationProgressUpdate? = nil) {
        let event = event(kind, peer: peer, vm: vm, vmID: vmID, migration: migration, progress: progress)
        for continuation in subscribers.withLock({ Array($0.all.values) }) { continuation.yield(event) }
    }

    /// `kind` with its details, from this host, stamped now.
    func event(_ kind: String, peer: String? = nil, vm: String? = nil, vmID: String? = nil, migration: String? = nil,
               progress: MigrationProgressUpdate? = nil) -> AgentEvent {
        AgentEvent(time: Date.now.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)), kind: kind, host: hostID,
                   peer: peer, vm: vm, vmID: vmID, migration: migration, progress: progress)
    }
}

public import ControlAPI
import Foundation
import MeshTime

/// The outgoing queue (Protocol.md §6.4, busy and the queue): beyond its outgoing limit a source
/// queues migrations and starts them in order as slots free.
extension MigrationCoordinator {
    /// Takes an outgoing slot for migrating `reference` to `destination`: at once when one is free
    /// and nobody waits, else after the migrations queued before it (telling `progress` its
    /// place as it moves), or refused at once when `queue` is false. Returns how long it waited.
    /// The caller MUST give the slot back with `releaseOutgoingSlot()`.
    func takeOutgoingSlot(for reference: String, to destination: String, queue allowed: Bool,
                          progress: @escaping @Sendable (MigrationProgressUpdate) async -> Void) async throws -> Duration {
        let limit = limits.outgoing
        // Checked and taken before the first suspension point: concurrent requests cannot all pass.
        if outgoingCount < limit && queue.isEmpty {
            outgoingCount += 1
            return .zero
        }
        guard allowed else {
            MigrationMetrics.ended(.refused, role: "source")
            throw ControlError.conflict("this host already runs \(outgoingCount) outgoing migrations (limit \(limit))"
                                        + (queue.isEmpty ? "" : " and \(queue.entries.count) wait") + "; --no-queue refuses instead of waiting: retry later, or leave it out to queue")
        }
        let started = ContinuousClock.now
        let (events, continuation) = AsyncStream.makeStream(of: OutgoingQueue.Event.self)
        let (ticket, position) = queue.append(vm: reference, destination: destination, since: Date().timeIntervalSince1970, events: continuation)
        logger.info("migration queued", metadata: ["vm.ref": "\(reference)", "migration.queue_position": "\(position)",
                                                    "migration.outgoing": "\(outgoingCount)", "migration.outgoing_max": "\(limit)"])
        await progress(.queued(position: position))
        for await event in events {
            switch event {
            case .moved(let position):
                await progress(.queued(position: position))
            case .granted:
                grantedTickets.remove(ticket)
                let waited = ContinuousClock.now - started
                logger.info("queued migration starts", metadata: ["vm.ref": "\(reference)", "migration.queue_wait_ms": "\(waited.wholeMilliseconds)"])
                return waited
            }
        }
        // The stream ended without a grant: the request was cancelled (its client went away or the
        // agent shuts down). Leave the queue, or give back the slot granted meanwhile.
        if !queue.remove(ticket) && grantedTickets.contains(ticket) {
            releaseOutgoingSlot()
        }
        grantedTickets.remove(ticket)
        throw CancellationError()
    }

    /// Gives an outgoing slot back and hands free slots to the next migrations in the queue.
    func releaseOutgoingSlot() {
        outgoingCount -= 1
        grantQueuedSlots()
    }

    /// Hands free slots to the queue's first migrations, in order, and tells the rest their place.
    func grantQueuedSlots() {
        var moved = false
        while outgoingCount < limits.outgoing, let next = queue.popFirst() {
            moved = true
            outgoingCount += 1
            grantedTickets.insert(next.ticket)
            if case .terminated = next.events.yield(.granted) {
                // Its waiter is gone (cancelled): the slot goes to the next one.
                grantedTickets.remove(next.ticket)
                outgoingCount -= 1
            } else {
                next.events.finish()
            }
        }
        guard moved else { return }
        for (index, entry) in queue.entries.enumerated() {
            entry.events.yield(.moved(position: index + 1))
        }
    }

    /// The migrations waiting in the queue, for `migrations` (phase "queued", next first).
    public func queued() -> [MigrationRecord] {
        queue.entries.enumerated().map { index, entry in
            MigrationRecord(id: "queued-\(entry.ticket)", vm: entry.vm, role: "source", peer: entry.destination, phase: "queued",
                            startedAt: entry.since, queuePosition: index + 1)
        }
    }

    /// Migrations waiting in the queue.
    public var queuedCount: Int { queue.entries.count }
}

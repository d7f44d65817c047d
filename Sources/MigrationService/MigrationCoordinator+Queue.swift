public import ControlAPI
import Foundation
import MeshTime

/// The outgoing queue (Protocol.md §6.4, busy and the queue): beyond its outgoing limit a source
/// queues migrations and starts them in order as slots free.
extension MigrationCoordinator {
    /// Takes an outgoing slot for migrating `reference` to `destination` (and a disk slot when it
    /// mirrors local disks, `withDisks`): at once when they are free and no queued migration that
    /// could take them waits, else after the migrations queued before it (telling `progress` its
    /// place as it moves), or refused at once when `queue` is false. Returns how long it waited.
    /// The caller MUST give the slot back with `releaseOutgoingSlot(withDisks:)`.
    func takeOutgoingSlot(for reference: String, to destination: String, withDisks: Bool, queue allowed: Bool,
                          progress: @escaping @Sendable (MigrationProgressUpdate) async -> Void) async throws -> Duration {
        let limit = limits.outgoing
        // Checked and taken before the first suspension point: concurrent requests cannot all pass.
        if fitsOutgoing(withDisks: withDisks) && !queue.entries.contains(where: { fitsOutgoing(withDisks: $0.withDisks) }) {
            takeSlot(withDisks: withDisks)
            return .zero
        }
        guard allowed else {
            MigrationMetrics.ended(.refused, role: "source")
            let waiting = queue.isEmpty ? "" : " and \(queue.entries.count) wait"
            if withDisks && outgoingCount < limit {
                // Only the disk limit is in the way.
                throw ControlError.conflict("this host already runs \(outgoingWithDisksCount) outgoing migrations with local disks "
                                            + "(limit \(limits.outgoingWithDisks), max_outgoing_disk_migrations)\(waiting); --no-queue refuses instead of waiting: "
                                            + "retry later, leave it out to queue, or raise max_outgoing_disk_migrations (at most max_outgoing_migrations) and reload the agent (SIGHUP)")
            }
            throw ControlError.conflict("this host already runs \(outgoingCount) outgoing migrations (limit \(limit))"
                                        + waiting + "; --no-queue refuses instead of waiting: retry later, or leave it out to queue")
        }
        let started = ContinuousClock.now
        let (events, continuation) = AsyncStream.makeStream(of: OutgoingQueue.Event.self)
        let (ticket, position) = queue.append(vm: reference, destination: destination, withDisks: withDisks, since: Date().timeIntervalSince1970, events: continuation)
        logger.info("migration queued", metadata: ["vm.ref": "\(reference)", "migration.queue_position": "\(position)",
                                                    "migration.outgoing": "\(outgoingCount)", "migration.outgoing_max": "\(limit)",
                                                    "migration.outgoing_disk": "\(outgoingWithDisksCount)", "migration.with_disks": "\(withDisks)"])
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
            releaseOutgoingSlot(withDisks: withDisks)
        }
        grantedTickets.remove(ticket)
        throw CancellationError()
    }

    /// True when a migration (with local disks: `withDisks`) could take an outgoing slot now.
    func fitsOutgoing(withDisks: Bool) -> Bool {
        outgoingCount < limits.outgoing && (!withDisks || outgoingWithDisksCount < limits.outgoingWithDisks)
    }

    private func takeSlot(withDisks: Bool) {
        outgoingCount += 1
        begun += 1
        if withDisks { outgoingWithDisksCount += 1 }
    }

    /// Gives an outgoing slot (and its disk slot, `withDisks`) back and hands free slots to the
    /// next migrations in the queue.
    func releaseOutgoingSlot(withDisks: Bool) {
        outgoingCount -= 1
        if withDisks { outgoingWithDisksCount -= 1 }
        grantQueuedSlots()
    }

    /// Hands free slots to the queue's first migrations that fit, in order, and tells the rest
    /// their place.
    func grantQueuedSlots() {
        var moved = false
        while let next = queue.popFirst(where: { fitsOutgoing(withDisks: $0.withDisks) }) {
            moved = true
            takeSlot(withDisks: next.withDisks)
            grantedTickets.insert(next.ticket)
            if case .terminated = next.events.yield(.granted) {
                // Its waiter is gone (cancelled): the slot goes to the next one.
                grantedTickets.remove(next.ticket)
                outgoingCount -= 1
                if next.withDisks { outgoingWithDisksCount -= 1 }
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

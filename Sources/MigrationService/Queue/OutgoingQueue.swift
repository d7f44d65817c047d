/// The source's queue of migrations waiting for an outgoing slot (Protocol.md §6.4, busy and the
/// queue): first in, first out, except that a migration with local disks waiting for a disk slot
/// (`MigrationLimits.outgoingWithDisks`) does not hold up those without local disks behind it.
/// A value; the coordinator owns it and wakes the waiters.
struct OutgoingQueue {
    /// What a waiting migration is told.
    enum Event: Sendable {
        /// Its place changed (1 = next).
        case moved(position: Int)
        /// A slot is its own now (counted already): go.
        case granted
    }

    /// One waiting migration.
    struct Entry {
        /// Its ticket, unique for the coordinator's lifetime.
        let ticket: UInt64
        /// The VM as the operator named it.
        let vm: String
        /// Where to, as asked.
        let destination: String
        /// It mirrors local disks: it needs a disk slot too.
        let withDisks: Bool
        /// When it joined, unix seconds (for `migrations`).
        let since: Double
        /// Where its events go.
        let events: AsyncStream<Event>.Continuation
    }

    /// Waiting migrations, the next first.
    private(set) var entries: [Entry] = []
    private var nextTicket: UInt64 = 1

    /// True when nobody waits.
    var isEmpty: Bool { entries.isEmpty }

    /// Adds a migration at the end; returns its ticket and position (1 = next).
    mutating func append(vm: String, destination: String, withDisks: Bool, since: Double,
                         events: AsyncStream<Event>.Continuation) -> (ticket: UInt64, position: Int) {
        let ticket = nextTicket
        nextTicket += 1
        entries.append(Entry(ticket: ticket, vm: vm, destination: destination, withDisks: withDisks, since: since, events: events))
        return (ticket, entries.count)
    }

    /// Takes the first migration that `fits` out (nil: none fits).
    mutating func popFirst(where fits: (Entry) -> Bool) -> Entry? {
        guard let index = entries.firstIndex(where: fits) else { return nil }
        return entries.remove(at: index)
    }

    /// Takes migration `ticket` out; false when it is not waiting (granted already, or unknown).
    @discardableResult
    mutating func remove(_ ticket: UInt64) -> Bool {
        guard let index = entries.firstIndex(where: { $0.ticket == ticket }) else { return false }
        entries.remove(at: index)
        return true
    }
}

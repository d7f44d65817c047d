import NIOConcurrencyHelpers

/// Connections being served, claimed before a connection's task starts so a burst cannot pass the cap.
final class ConnectionCount: Sendable {
    private let count = NIOLockedValueBox(0)

    /// Takes a slot; false when `limit` are taken.
    func claim(below limit: Int) -> Bool {
        count.withLockedValue { value in
            guard value < limit else { return false }
            value += 1
            return true
        }
    }

    /// Frees a slot.
    func release() {
        count.withLockedValue { $0 -= 1 }
    }
}

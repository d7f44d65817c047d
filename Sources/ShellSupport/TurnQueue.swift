/// Runs async work one piece at a time, in the order it was begun: each turn starts once the
/// turn begun before it ended (its error went to its own caller). An actor whose method awaits
/// between reading its state and acting on it holds one of these, so that a call begun later
/// can neither overtake nor interleave with one still under way; the actor enqueues with no
/// await before it, so the order is the order of the calls.
public struct TurnQueue: Sendable {
    /// Ends when the last turn enqueued ends, whatever its outcome.
    private var last: Task<Void, Never>?

    public init() {}

    /// Begins `work` after every turn enqueued before it; the returned task gives its outcome.
    public mutating func enqueue<Result: Sendable>(_ work: @escaping @Sendable () async throws -> Result) -> Task<Result, any Error> {
        let previous = last
        let turn = Task {
            await previous?.value
            return try await work()
        }
        last = Task { _ = await turn.result }
        return turn
    }
}

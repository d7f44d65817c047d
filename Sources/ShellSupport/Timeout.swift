/// An awaited answer did not come within its bound.
public struct TimedOut: Error, CustomStringConvertible, Sendable {
    public var timeout: Duration
    public init(timeout: Duration) { self.timeout = timeout }
    public var description: String { "no answer within \(timeout)" }
}

/// Runs `body`; once `timeout` has passed first, cancels it and throws `TimedOut`.
public func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw TimedOut(timeout: timeout)
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw TimedOut(timeout: timeout) }
        return first
    }
}

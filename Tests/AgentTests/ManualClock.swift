import Foundation

/// A clock that moves only when a test says so (`advance(by:)`): a periodic loop under test runs
/// exactly the rounds the test asks for, at once. `sleepers` tells when the loop is waiting
/// again, so the test knows a round has finished.
final class ManualClock: Clock, @unchecked Sendable {
    // @unchecked Sendable is safe: `now` and `waiting` are only read and written under `lock`.

    /// A point on the manual timeline: the time advanced since the clock was made.
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private let lock = NSLock()
    private var current = Instant(offset: .zero)
    private var waiting: [UUID: Sleeper] = [:]

    var now: Instant { lock.withLock { current } }
    var minimumResolution: Duration { .zero }

    /// Tasks sleeping on this clock now.
    var sleepers: Int { lock.withLock { waiting.count } }

    func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Outcome { case wait, wake, cancelled }
                let outcome: Outcome = lock.withLock {
                    // Checked under the lock: a cancellation handler that ran before this found
                    // nothing to resume, so the sleep must not start.
                    if Task.isCancelled { return .cancelled }
                    if deadline <= current { return .wake }
                    waiting[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return .wait
                }
                switch outcome {
                case .wait: break
                case .wake: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            lock.withLock { waiting.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock on and wakes every sleeper whose deadline has come.
    func advance(by duration: Duration) {
        let due: [Sleeper] = lock.withLock {
            current = current.advanced(by: duration)
            let due = waiting.filter { $0.value.deadline <= current }
            for id in due.keys { waiting[id] = nil }
            return Array(due.values)
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits (on the real clock, a few seconds at most) until `count` tasks sleep on this clock.
    func waitForSleepers(_ count: Int = 1) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while sleepers < count {
            guard ContinuousClock.now < deadline else {
                throw ManualClockError(description: "\(sleepers) task(s) sleep on the manual clock, not \(count), after 5 s: "
                                       + "the loop under test ended or is stuck outside its sleep")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

/// A manual clock waited in vain for a loop to go back to sleep.
struct ManualClockError: Error, CustomStringConvertible {
    let description: String
}

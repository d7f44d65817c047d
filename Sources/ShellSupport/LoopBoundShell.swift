public import NIOCore

/// The event-loop plumbing of a NIO shell: its mutable state confined to one event loop, the
/// hops onto that loop, and the promise that completes when the shell has stopped.
///
/// A shell (the membership service, the virtual switch) is a `Sendable` class whose public
/// methods may be called from any task. Everything it mutates lives in one non-Sendable
/// `State` object held in a `NIOLoopBoundBox`, so every access is checked to be on the loop;
/// the core is called there synchronously and its directives are carried out there.
///
/// `Failure` is the shell's typed error. `onLoop` throws `loopGone` when the event loop has
/// shut down (the shell cannot do anything more: it is as good as stopped).
public final class LoopBoundShell<State: AnyObject, Failure: Error>: Sendable {
    /// The loop the state is confined to.
    public let eventLoop: any EventLoop
    private let box: NIOLoopBoundBox<State>
    private let stoppedPromise: EventLoopPromise<Void>
    private let loopGone: Failure

    /// Confines `state` to `eventLoop`.
    ///
    /// - Parameter loopGone: what `onLoop` throws once the event loop has shut down.
    public init(state: sending State, eventLoop: any EventLoop, loopGone: Failure) {
        self.eventLoop = eventLoop
        box = NIOLoopBoundBox.makeBoxSendingValue(state, eventLoop: eventLoop)
        stoppedPromise = eventLoop.makePromise(of: Void.self)
        self.loopGone = loopGone
    }

    deinit {
        // A shell that never ran (or failed to start) is released without stopping; NIO
        // reports (and in debug builds traps on) an unfulfilled promise as a leak. Completing
        // a completed promise is a no-op.
        stoppedPromise.succeed()
    }

    /// The state. MUST be read on `eventLoop` only (checked: traps elsewhere).
    public var state: State { box.value }

    /// Runs `body` on the loop with the state and returns its result.
    public func onLoop<T: Sendable>(_ body: @escaping @Sendable (State) throws(Failure) -> T) async throws(Failure) -> T {
        let result: Result<T, Failure>
        do {
            result = try await eventLoop.submit { () -> Result<T, Failure> in
                do throws(Failure) {
                    return .success(try body(self.box.value))
                } catch {
                    return .failure(error)
                }
            }.get()
        } catch {
            throw loopGone
        }
        return try result.get()
    }

    /// Runs `body` on the loop and waits for the future it returns. A future failing with
    /// `Failure` rethrows it; any other error (a channel's) is mapped by `otherError`.
    public func onLoopAsync<T: Sendable>(
        _ body: @escaping @Sendable (State) throws(Failure) -> EventLoopFuture<T>,
        otherError: (any Error) -> Failure
    ) async throws(Failure) -> T {
        let future = try await onLoop { state throws(Failure) in try body(state) }
        do {
            return try await future.get()
        } catch let error as Failure {
            throw error
        } catch {
            throw otherError(error)
        }
    }

    /// Runs `body` on the loop with the state, without waiting.
    public func execute(_ body: @escaping @Sendable (State) -> Void) {
        eventLoop.execute { body(self.box.value) }
    }

    /// Completes once the shell has stopped (`stopped(after:)`).
    public var stoppedFuture: EventLoopFuture<Void> { stoppedPromise.futureResult }

    /// Waits until the shell has stopped.
    public func waitUntilStopped() async {
        try? await stoppedPromise.futureResult.get()  // the promise only ever succeeds
    }

    /// Marks the shell stopped once `closing` completes (whatever its result: a socket that
    /// failed to close is closed as far as the shell is concerned).
    public func stopped(after closing: EventLoopFuture<Void>) {
        closing.whenComplete { _ in self.stoppedPromise.succeed() }
    }
}

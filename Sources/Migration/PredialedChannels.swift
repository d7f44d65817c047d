public import Logging
import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix
public import SecureChannel

/// Stream channels a source opens before QEMU connects (Protocol.md §6.3): dialled beside the
/// checklist's control channel (or, without one, while the prepare is on its way), so their TCP
/// and Noise handshakes (two round trips, 300 ms at 150 ms) overlap the checklist's answer, the
/// prepare and the destination QEMU's start instead of delaying QEMU's first bytes.
/// A channel carries nothing, not even its hello, until the first QEMU connection claims it: the
/// hello goes only once the destination has admitted the migration. All are on one event loop,
/// the one the tunnel accepts QEMU's connections on, since the glue needs both ends on one thread.
public final class PredialedChannels: Sendable {
    /// One channel opened ahead.
    struct Slot: Sendable {
        /// The channel once its keys are ready (the destination's message 2 read): its hello and
        /// QEMU's bytes may follow message 3 at once, as on a channel dialled then (`early`). Nil
        /// when it could not be opened that far: the claimer dials its own.
        let keys: EventLoopFuture<(any Channel)?>
        /// The destination's accept record; fails with its refusal, or the channel's end before it.
        let accepted: EventLoopFuture<Void>
    }

    let eventLoop: any EventLoop
    /// Channels dialled: the stripes of the stream they are for (1: not striped).
    public var count: Int { slots.count }
    private let slots: [Slot]
    private let state = NIOLockedValueBox((claimed: false, closed: false))

    /// Starts dialling `count` channels of `purpose` to `host:port` with `configuration` (its
    /// expected peer set) on one event loop of `group`.
    public init(count: Int, host: String, port: Int, purpose: StreamPurpose = .migration, configuration: SecureChannelConfiguration,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        var configuration = configuration
        configuration.policy.purpose = purpose.rawValue
        let eventLoop = group.next()
        self.eventLoop = eventLoop
        var slots: [Slot] = []
        for _ in 0..<min(max(1, count), StreamStriping.maxStripes) {
            let keys = eventLoop.makePromise(of: (any Channel)?.self)
            let accepted = eventLoop.makePromise(of: Void.self)
            slots.append(Slot(keys: keys.futureResult, accepted: accepted.futureResult))
            // Set when `keys` is fulfilled with the channel: a later failure fails `accepted` only.
            let given = NIOLockedValueBox(false)
            Task {
                do {
                    _ = try await SecureConnection.connectPipeline(
                        host: host, port: port, configuration: configuration, group: eventLoop, logger: logger, early: true
                    ) { channel, _ in
                        given.withLockedValue { $0 = true }
                        keys.succeed(channel)
                    }
                    accepted.succeed(())
                } catch {
                    if !given.withLockedValue({ $0 }) {
                        logger.debug("stream channel not opened ahead; QEMU's connection dials its own", metadata: ["mesh.reason": "\(error)"])
                        keys.succeed(nil)
                    }
                    accepted.fail(error)
                }
            }
        }
        self.slots = slots
    }

    /// Every slot, to the first caller only (QEMU's first connection): the channels are then its
    /// own to carry or close. Empty for any later caller or once closed.
    func claim() -> [Slot] {
        state.withLockedValue { state in
            guard !state.claimed, !state.closed else { return [] }
            state.claimed = true
            return slots
        }
    }

    /// Closes the channels nobody claimed, now or when they open: the migration ended before QEMU
    /// connected. Claimed channels are left to their claimer.
    public func close() {
        let claimed = state.withLockedValue { state in
            defer { state.closed = true }
            return state.claimed || state.closed
        }
        guard !claimed else { return }
        for slot in slots { slot.keys.whenSuccess { $0?.close(promise: nil) } }
    }
}

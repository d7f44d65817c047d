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
/// hello goes only once the destination has admitted the migration. At distance it sends padding
/// meanwhile (Protocol.md §3.6, §6.3), so that its congestion window has grown by the time QEMU's
/// first bytes come: a fresh connection's window starts at 10 segments and doubles per round
/// trip, and the time a stream channel waits for QEMU is otherwise spent with an idle link.
/// All are on one event loop, the one the tunnel accepts QEMU's connections on, since the glue
/// needs both ends on one thread.
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
    /// The host the channels were dialled to (their expected peer), if one was named.
    public let expectedPeer: String?
    /// Channels dialled: the stripes of the stream they are for (1: not striped).
    public var count: Int { slots.count }
    private let slots: [Slot]
    private let state: NIOLockedValueBox<(claimed: Bool, closed: Bool)>
    /// Padding bytes the channels sent while they waited, all together.
    private let padded = NIOLockedValueBox(0)

    /// The padding record's size, bytes: small, so that what is queued ahead of QEMU's first byte
    /// when it comes is short.
    static let paddingRecord = 16 << 10
    /// The unsent bytes a waiting channel's kernel may hold (`TCP_NOTSENT_LOWAT`): the padding is
    /// written as the window opens, not queued in the send buffer ahead of the stream.
    static let paddingUnsent = 32 << 10

    /// Starts dialling `count` channels of `purpose` to `host:port` with `configuration` (its
    /// expected peer set) on one event loop of `group`. Each channel whose peer accepts padding
    /// sends up to `paddingBytes` of it while it waits (0: none; see `paddingBudget`), with the
    /// stream's `congestionControl` set first.
    public init(count: Int, host: String, port: Int, purpose: StreamPurpose = .migration, configuration: SecureChannelConfiguration,
                paddingBytes: Int = 0, congestionControl: StreamCongestionControl.Choice, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        var configuration = configuration
        configuration.policy.purpose = purpose.rawValue
        let eventLoop = group.next()
        self.eventLoop = eventLoop
        self.expectedPeer = configuration.policy.expectedPeer
        let state = NIOLockedValueBox((claimed: false, closed: false))
        self.state = state
        let padded = self.padded
        @Sendable func waiting() -> Bool { state.withLockedValue { !$0.claimed && !$0.closed } }
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
                    ) { channel, session in
                        given.withLockedValue { $0 = true }
                        // Before the keys are given: a claimer waiting for them sets the stream's
                        // own buffers in that call, after the padding's, and so has the last word.
                        if paddingBytes > 0, session.peerAcceptsPadding, waiting() {
                            Self.pad(channel, upTo: paddingBytes, congestionControl: congestionControl, while: waiting, counted: padded)
                        }
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

    /// `count` channels opened ahead across a round trip of `rttMicroseconds` (the control
    /// channel's, or the one remembered) at `rateBytesPerSecond`: each pads its budget
    /// (`paddingBudget`), after sending filler (`fillerBytes`) where the host `acceptsFiller`.
    public convenience init(ahead count: Int, host: String, port: Int, configuration: SecureChannelConfiguration, rttMicroseconds: UInt32,
                            rateBytesPerSecond: Int?, acceptsFiller: Bool, congestionControl: StreamCongestionControl.Choice, logger: Logger) {
        var configuration = configuration
        configuration.policy.handshakeFillerBytes = acceptsFiller ? Self.fillerBytes(rttMicroseconds: rttMicroseconds) : 0
        self.init(count: count, host: host, port: port, configuration: configuration,
                  paddingBytes: Self.paddingBudget(rttMicroseconds: rttMicroseconds, count: count, rateBytesPerSecond: rateBytesPerSecond),
                  congestionControl: congestionControl, logger: logger)
    }

    /// The padding a channel may send while it waits, bytes, for a stream striped `count` ways across
    /// a round trip of `rttMicroseconds` at `rateBytesPerSecond`: twice its share of the link's
    /// bandwidth-delay product, what a window doubling from 10 segments sends on its way to that
    /// share. 0 under `StreamBufferSizing.distanceThresholdMicroseconds`: on a LAN the window
    /// opens within milliseconds and padding would only cost CPU.
    public static func paddingBudget(rttMicroseconds: UInt32, count: Int, rateBytesPerSecond: Int?) -> Int {
        guard rttMicroseconds >= StreamBufferSizing.distanceThresholdMicroseconds else { return 0 }
        let rtt = Double(min(rttMicroseconds, StreamBufferSizing.maxSizingRTTMicroseconds)) / 1e6
        let product = min(Double(StreamBufferSizing.maxWantedBytes), rtt * Double(rateBytesPerSecond ?? StreamBufferSizing.distanceRate))
        return max(paddingRecord, 2 * Int(product) / max(1, count))
    }

    /// The filler a channel sends after its message 1 (Protocol.md §3.2) across a round trip of
    /// `rttMicroseconds`, to a host known to accept it: 13 KiB, with message 1 about a full initial
    /// window of 10 segments, so that the window has doubled once when the keys are ready and the
    /// padding begins. None under `StreamBufferSizing.distanceThresholdMicroseconds`, as padding.
    public static func fillerBytes(rttMicroseconds: UInt32) -> Int {
        rttMicroseconds >= StreamBufferSizing.distanceThresholdMicroseconds ? 13 << 10 : 0
    }

    /// Padding bytes sent so far by all the channels while they waited.
    public var paddingSent: Int { padded.withLockedValue { $0 } }

    /// Sends padding records on `channel` (on its event loop), one after the other as its kernel
    /// takes them, until `waiting` says the channel was claimed or closed, or `budget` is spent.
    private static func pad(_ channel: any Channel, upTo budget: Int, congestionControl: StreamCongestionControl.Choice, while waiting: @escaping @Sendable () -> Bool,
                            counted: NIOLockedValueBox<Int>) {
        @Sendable func next(_ sent: Int) {
            guard sent < budget, channel.isActive, waiting() else { return }
            let length = min(paddingRecord, budget - sent)
            // A failed write (the channel closed) ends the padding; the claimer sees the channel's end.
            channel.triggerUserOutboundEvent(SecureChannelPadding(length: length)).whenSuccess {
                counted.withLockedValue { $0 += length }
                // Queued, not called: a write the kernel took at once completes at once, and the
                // chain must not grow the stack or hold the event loop.
                channel.eventLoop.execute { next(sent + length) }
            }
        }
        // The stream's congestion control first (§6.11): the padding ramps the window it will keep.
        StreamBuffers.keepUnsent(channel, below: paddingUnsent)
            .and(StreamCongestionControl.apply(congestionControl, to: channel, logger: StreamBuffers.logger))
            .whenComplete { _ in next(0) }
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

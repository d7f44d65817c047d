import Foundation
import Synchronization

/// A link between two Ethernet segments emulated at the frame level (README, "Long distance"):
/// a tap device on each side (`attach` them to the sites' bridges), and every frame that leaves
/// one side meets that direction's `LinkShaper` (delay, jitter, rate with a drop-tail queue,
/// loss) before it is handed to the other side.
///
/// Unlike the TCP relays of `EmulatedLink`, which end each connection at the relay and so hide
/// the endpoints' windows, nothing is terminated here: a TCP connection between the sites runs
/// end to end through the delay, with its real windows, slow start, losses and retransmissions,
/// which is what buffer sizing at distance has to be measured against.
///
/// One thread per direction reads frames as they come and writes each at its instant; it wakes
/// at most every `wakeGranularity` (so a busy link costs thousands, not tens of thousands, of
/// wake-ups a second). Frames whose instant has come are written in order.
public final class FrameLink: Sendable {
    /// Counters of one direction.
    public struct Counters: Sendable, Equatable {
        /// Frames handed to the other side.
        public var delivered = 0
        /// Bytes of those frames.
        public var deliveredBytes = 0
        /// Frames lost at random.
        public var droppedLost = 0
        /// Frames dropped because the bottleneck queue was full.
        public var droppedQueueFull = 0
        /// Frames the other side's device refused (its queue was full).
        public var droppedWrite = 0
    }

    /// The tap on site A's side and on site B's side.
    public let tapA: String
    public let tapB: String
    /// Waits are rounded up to this, in nanoseconds.
    static let wakeGranularity: Int64 = 200_000

    private let running = Atomic<Bool>(true)
    private let counters: Mutex<[Counters]> = Mutex([Counters(), Counters()])
    private let finished = DispatchGroup()
    private let stopped = Atomic<Bool>(false)

    /// Makes taps `tapA` and `tapB` and starts relaying between them: frames read from `tapA`
    /// cross in direction `aToB`, frames from `tapB` in `bToA`.
    public init(tapA: String, tapB: String, aToB: LinkProfile, bToA: LinkProfile) throws(LinkEmulatorError) {
        try aToB.validate()
        try bToA.validate()
        self.tapA = tapA
        self.tapB = tapB
        let a = try TapDevice(name: tapA)
        let b = try TapDevice(name: tapB)
        // Each thread reads one descriptor and writes the other; the devices (and so the
        // descriptors) live until both threads are done.
        let devices = TapPair(a: a, b: b)
        for (index, profile, from, to) in [(0, aToB, devices.a.descriptor, devices.b.descriptor),
                                           (1, bToA, devices.b.descriptor, devices.a.descriptor)] {
            finished.enter()
            let thread = Thread { [self] in
                relay(direction: index, profile: profile, from: from, to: to)
                finished.leave()
                withExtendedLifetime(devices) {}
            }
            thread.name = "hm-framelink-\(index == 0 ? "ab" : "ba")"
            thread.start()
        }
    }

    /// A symmetric link (the reverse direction draws from a different seed).
    public convenience init(tapA: String, tapB: String, profile: LinkProfile) throws(LinkEmulatorError) {
        var reverse = profile
        reverse.seed = profile.seed ^ 0x5851_F42D_4C95_7F2D
        try self.init(tapA: tapA, tapB: tapB, aToB: profile, bToA: reverse)
    }

    /// What direction A→B (`aToB: true`) or B→A did so far.
    public func counters(aToB: Bool) -> Counters {
        counters.withLock { $0[aToB ? 0 : 1] }
    }

    /// Stops both directions (frames not yet delivered are dropped) and removes the taps. Call it
    /// when done: the relay threads hold the link until then.
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        running.store(false, ordering: .relaxed)
        finished.wait()
    }

    /// One direction: read what arrives, hold each frame until its instant, write it.
    private func relay(direction: Int, profile: LinkProfile, from: Int32, to: Int32) {
        var shaper = LinkShaper(profile: profile)
        var pending: [(at: Int64, frame: [UInt8])] = []
        var head = 0
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var local = Counters()
        var lastPublished = Self.now()
        while running.load(ordering: .relaxed) {
            var now = Self.now()
            while head < pending.count, pending[head].at <= now {
                let frame = pending[head].frame
                let written = frame.withUnsafeBytes { write(to, $0.baseAddress, $0.count) }
                if written == frame.count {
                    local.delivered += 1
                    local.deliveredBytes += frame.count
                } else {
                    local.droppedWrite += 1
                }
                head += 1
            }
            if head > 1024, head * 2 > pending.count {
                pending.removeFirst(head)
                head = 0
            }
            // Sleep until the next frame is due (rounded up), or at most 20 ms so a stop is seen.
            var wait: Int64 = 20_000_000
            if head < pending.count {
                let due = pending[head].at - now
                wait = min(wait, (due + Self.wakeGranularity - 1) / Self.wakeGranularity * Self.wakeGranularity)
            }
            var descriptor = pollfd(fd: from, events: Int16(POLLIN), revents: 0)
            var timeout = timespec(tv_sec: Int(wait / 1_000_000_000), tv_nsec: Int(wait % 1_000_000_000))
            _ = pollWithNanoseconds(&descriptor, 1, &timeout, nil)
            now = Self.now()
            // Published on a quiet link too, so a reader sees the last frames within ~70 ms.
            if now - lastPublished > 50_000_000 {
                lastPublished = now
                publish(local, direction: direction)
            }
            guard descriptor.revents & Int16(POLLIN) != 0 else { continue }
            // Take everything waiting (up to a bound, so due frames are not held back).
            for _ in 0..<512 {
                let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                switch shaper.arrive(size: count, kind: .datagram, now: now) {
                case .deliver(let at): pending.append((at, Array(buffer[0..<count])))
                case .drop(.lost): local.droppedLost += 1
                case .drop(.queueFull): local.droppedQueueFull += 1
                }
            }
        }
        publish(local, direction: direction)
    }

    private func publish(_ local: Counters, direction: Int) {
        counters.withLock { $0[direction] = local }
    }

    /// Monotonic nanoseconds.
    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}

/// The two taps of a link, kept alive by the relay threads (a class: tap devices are not copyable).
private final class TapPair: Sendable {
    let a: TapDevice
    let b: TapDevice

    init(a: consuming TapDevice, b: consuming TapDevice) {
        self.a = a
        self.b = b
    }
}

/// ppoll(2), for waits finer than poll's milliseconds: not exported by Swift's Glibc module (it
/// needs _GNU_SOURCE).
@_silgen_name("ppoll")
private func pollWithNanoseconds(_ fds: UnsafeMutablePointer<pollfd>, _ count: UInt, _ timeout: UnsafePointer<timespec>?, _ signals: UnsafeRawPointer?) -> Int32

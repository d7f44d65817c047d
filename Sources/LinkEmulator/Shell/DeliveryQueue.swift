import NIOCore

/// Actions due at given instants, run in order on one event loop with a single timer.
///
/// Instants pushed into one queue MUST not decrease (a shaper's deliveries never do), so the
/// head is always the earliest. Confined to `eventLoop`: not Sendable.
final class DeliveryQueue {
    private let eventLoop: any EventLoop
    private var items: [(at: Int64, action: () -> Void)] = []
    private var head = 0
    private var timer: Scheduled<Void>?
    private var closed = false

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Number of actions not yet run.
    var count: Int { items.count - head }

    /// Runs `action` at `at` (nanoseconds of `NIODeadline.now().uptimeNanoseconds`).
    func push(at: Int64, _ action: @escaping () -> Void) {
        guard !closed else { return }
        items.append((at, action))
        if timer == nil { arm() }
    }

    /// Drops everything not yet run; later pushes are ignored.
    func close() {
        closed = true
        timer?.cancel()
        timer = nil
        items = []
        head = 0
    }

    private func arm() {
        guard head < items.count else { return }
        let deadline = NIODeadline.uptimeNanoseconds(UInt64(max(0, items[head].at)))
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        timer = eventLoop.scheduleTask(deadline: deadline) {
            loopBound.value.fire()
        }
    }

    private func fire() {
        timer = nil
        let now = LinkClock.now()
        while head < items.count, items[head].at <= now, !closed {
            let action = items[head].action
            head += 1
            action()
        }
        if head > 256, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        if !closed { arm() }
    }
}

/// The emulator's clock: NIO's monotonic uptime in nanoseconds.
enum LinkClock {
    static func now() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }
}

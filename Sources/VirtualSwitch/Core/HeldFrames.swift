import MeshTime
import NIOCore

/// Frames for a VM that cannot take them right now, kept in arrival order (Protocol.md §8.6.1):
/// its port is paused (the guest stopped for the switchover), frozen (the source at
/// switchover) or blocked (the destination before the VM announced itself). Bounded by bytes
/// and by age; what exceeds a bound is dropped and counted by the caller.
struct HeldFrames: Sendable {
    struct Entry: Sendable {
        var frame: ByteBuffer
        var arrived: MeshInstant
        /// Already admitted by this port's ingress firewall and counted as delivered (frames
        /// the shell had handed out but the VM's socket had not taken): delivered here as they are.
        var admitted: Bool
    }

    private(set) var entries: [Entry] = []
    private(set) var bytes = 0

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// Appends a frame; false (and nothing kept) if it would pass `maxBytes`.
    mutating func append(_ frame: ByteBuffer, now: MeshInstant, maxBytes: Int, admitted: Bool = false) -> Bool {
        guard bytes + frame.readableBytes <= maxBytes else { return false }
        entries.append(Entry(frame: frame, arrived: now, admitted: admitted))
        bytes += frame.readableBytes
        return true
    }

    /// Puts frames back in front of the queue (older than anything held), as far as `maxBytes`
    /// allows; returns how many did not fit (the newest of them are dropped, to keep order).
    mutating func prepend(_ frames: [ByteBuffer], now: MeshInstant, maxBytes: Int) -> Int {
        var kept: [Entry] = []
        var total = bytes
        for frame in frames {
            guard total + frame.readableBytes <= maxBytes else { break }
            kept.append(Entry(frame: frame, arrived: now, admitted: true))
            total += frame.readableBytes
        }
        entries.insert(contentsOf: kept, at: 0)
        bytes = total
        return frames.count - kept.count
    }

    /// Drops frames that arrived more than `maxAge` before `now`; returns how many.
    mutating func expire(now: MeshInstant, maxAge: Duration) -> Int {
        let old = entries.prefix { now - $0.arrived > maxAge }.count
        guard old > 0 else { return 0 }
        bytes -= entries.prefix(old).reduce(0) { $0 + $1.frame.readableBytes }
        entries.removeFirst(old)
        return old
    }

    /// Everything held, oldest first; the queue is empty afterwards.
    mutating func takeAll() -> [Entry] {
        defer {
            entries = []
            bytes = 0
        }
        return entries
    }
}

public import MeshTime
public import NIOCore

/// Frames held for a VM that cannot take them during a move (Protocol.md §8.6.1): the source's
/// port while the guest is paused and once frozen, the destination's while blocked. Held frames
/// leave in arrival order, each once: delivered when the port resumes, unfreezes or activates;
/// sent on to the VM's new host when the source starts forwarding stragglers.
extension SwitchCore {
    /// Source, the guest just paused (QEMU's STOP at the start of the switchover): frames for
    /// it are held instead of sent to a socket nobody reads (QEMU would keep them in its queue
    /// and lose them with the process). `undelivered`: frames the shell had been given for the
    /// VM but could not hand over yet; they go back in front, in order, or, when the port cannot
    /// pause (not active, or holding is off), to the port as before. The pause ends with `resumePort`, `freezePort`, or by itself after
    /// `SwitchSettings.heldFramesMaxAge`.
    public mutating func pausePort(_ id: PortID, undelivered: [ByteBuffer] = [], now: MeshInstant) throws(SwitchError) -> [SwitchDirective] {
        let port = try port(id)
        guard settings.holdFramesDuringMoves, port.lifecycle == .active else {
            // Not paused (holding is off, or the port is blocked, frozen, forwarding): what the
            // shell handed back goes to it again, first and in order, as if never taken (it
            // passed the firewall already). Today's shell hands none over when holding is off
            // (`takeBacklog`), but a frame given to the core is never dropped uncounted.
            output += undelivered.map { .deliver(port: id, frame: $0) }
            return takeOutput()
        }
        ports[id]?.pausedUntil = now + settings.heldFramesMaxAge
        reclaim(id, undelivered, now: now)
        return takeOutput()
    }

    /// The paused guest runs again here (the migration failed before the switchover): the held
    /// frames are delivered, in order. No-op for a port that is not paused.
    public mutating func resumePort(_ id: PortID, now: MeshInstant) throws(SwitchError) -> [SwitchDirective] {
        let port = try port(id)
        guard port.pausedUntil != nil else { return [] }
        ports[id]?.pausedUntil = nil
        if port.lifecycle == .active { releaseHeld(id, now: now) }
        return takeOutput()
    }

    /// Frames held for a port, and their bytes (for status and tests).
    public func heldFrames(of id: PortID) -> (frames: Int, bytes: Int)? {
        ports[id].map { ($0.held.count, $0.held.bytes) }
    }

    /// Whether frames for `port` are held rather than delivered now.
    func holds(_ port: Port) -> Bool {
        guard settings.holdFramesDuringMoves else { return false }
        switch port.lifecycle {
        case .active: return port.pausedUntil != nil
        case .blocked, .frozen: return true
        case .forwardingStragglers: return false
        }
    }

    /// Holds a frame for port `id` (its lifecycle says it cannot take it now).
    mutating func hold(_ frame: ByteBuffer, for id: PortID, now: MeshInstant) {
        guard var port = ports[id] else { return }
        counters.heldFramesDropped &+= UInt64(port.held.expire(now: now, maxAge: settings.heldFramesMaxAge))
        if port.held.append(frame, now: now, maxBytes: settings.heldFramesMaxBytes) {
            counters.heldFramesQueued &+= 1
        } else {
            counters.heldFramesDropped &+= 1
        }
        ports[id] = port
    }

    /// Frames the shell could not hand to the VM, back in front of the held ones.
    mutating func reclaim(_ id: PortID, _ frames: [ByteBuffer], now: MeshInstant) {
        guard !frames.isEmpty, var port = ports[id] else { return }
        let dropped = port.held.prepend(frames, now: now, maxBytes: settings.heldFramesMaxBytes)
        counters.heldFramesQueued &+= UInt64(frames.count - dropped)
        counters.heldFramesDropped &+= UInt64(dropped)
        ports[id] = port
    }

    /// Delivers everything held for an active port, oldest first, through its ingress firewall
    /// (frames reclaimed from the shell passed it already).
    mutating func releaseHeld(_ id: PortID, now: MeshInstant) {
        guard var port = ports[id], !port.held.isEmpty else { return }
        let entries = port.held.takeAll()
        for entry in entries {
            counters.heldFramesDelivered &+= 1
            if entry.admitted {
                output.append(.deliver(port: id, frame: entry.frame, held: true))
                continue
            }
            guard let header = EthernetHeader(entry.frame) else { continue }
            if let reason = port.admitToVM(entry.frame, header: header, now: now) {
                port.local.countDrop(reason)
                counters.countPortDrop(reason)
            } else {
                port.local.countDelivered(entry.frame.readableBytes)
                output.append(.deliver(port: id, frame: entry.frame, held: true))
            }
        }
        ports[id] = port
    }

    /// Sends everything held for a frozen port on to `host` (the VM's new host), oldest first,
    /// marked forwarded (the receiver holds or delivers them and never forwards them again).
    mutating func forwardHeld(_ id: PortID, to host: HostID) {
        guard var port = ports[id], !port.held.isEmpty else { return }
        let entries = port.held.takeAll()
        ports[id] = port
        for entry in entries {
            counters.heldFramesForwarded &+= 1
            counters.overlayFramesOut &+= 1
            output.append(.sendFrame(to: host, segment: port.segment, frame: entry.frame, forwarded: true))
        }
    }

    /// The tick's part: held frames past the age bound are dropped; a pause nobody ended ends.
    mutating func tickHeld(_ id: PortID, now: MeshInstant) {
        guard var port = ports[id] else { return }
        counters.heldFramesDropped &+= UInt64(port.held.expire(now: now, maxAge: settings.heldFramesMaxAge))
        let pauseOver = port.pausedUntil.map { now >= $0 } ?? false
        if pauseOver { port.pausedUntil = nil }
        ports[id] = port
        if pauseOver, port.lifecycle == .active { releaseHeld(id, now: now) }
    }
}

import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

extension VirtualSwitch {
    /// Carries out the core's directives, in order. On the loop.
    func execute(_ directives: [SwitchDirective], _ shell: SwitchShellState) {
        for directive in directives {
            switch directive {
            case let .deliver(port, frame, held):
                deliver(frame, to: port, held: held, shell)
            case let .sendFrame(host, segment, frame, forwarded, flooded):
                sendOverlay(frame, kind: .frame, segment: segment.rawValue,
                            flags: (forwarded ? OverlayHeader.flagForwarded : 0) | (flooded ? OverlayHeader.flagFlooded : 0), to: host, shell)
            case let .sendLocations(locations, hosts):
                let payload = shell.allocator.buffer(bytes: OverlayControlCodec.encode(locations))
                for host in hosts {
                    if let link = shell.overlay.link(of: host) {
                        // A host of another domain hears only this domain's stretched locations, named as this
                        // host's, its gateway's (§8.9).
                        let mapped = link.outgoing(locations, localHost: configuration.hostID) { shell.overlay.link(of: $0) != nil }
                        if !mapped.isEmpty {
                            sendOverlay(shell.allocator.buffer(bytes: OverlayControlCodec.encode(mapped)), kind: .control, segment: 0, flags: 0, to: host, shell)
                        }
                        continue
                    }
                    sendOverlay(payload, kind: .control, segment: 0, flags: 0, to: host, shell)
                }
            case let .event(event):
                log(event)
                eventSink.yield(event)
            }
        }
    }

    /// Most frames a port holds back for a VM that is not reading fast enough.
    static let maxBacklog = 256

    /// First wait before held-back frames are sent again: a running VM reads its socket within
    /// microseconds, so a short wait keeps latency low while it is merely slower than the sender.
    static let minimumDrainDelay = TimeAmount.microseconds(500)
    /// Longest wait between drains. A paused VM (switchover, a long in-doubt hold) reads nothing
    /// for seconds: waking every 500 µs for it burns the loop for nothing, and once it runs
    /// again its first reads empty the socket queue, so 50 ms is the most its backlog waits.
    static let maximumDrainDelay = TimeAmount.milliseconds(50)

    /// The wait before the next drain after `fruitless` drains in a row sent nothing: doubles
    /// each time, from `minimumDrainDelay` up to `maximumDrainDelay`.
    static func drainDelay(afterFruitless fruitless: Int) -> TimeAmount {
        let shift = min(fruitless, 16)  // 500 µs << 16 is far past the cap; no overflow
        return min(minimumDrainDelay * (1 << shift), maximumDrainDelay)
    }

    /// Sends a frame to a VM, keeping order behind frames already held back. `held`: released
    /// from the port's hold, not subject to `maxBacklog` (see `SwitchDirective.deliver`).
    private func deliver(_ frame: ByteBuffer, to port: PortID, held: Bool = false, _ shell: SwitchShellState) {
        guard let binding = shell.ports[port] else {
            // A port with no socket (being removed or not bound yet): the frame is lost, counted.
            shell.core.recordDeliveryFailure(port: port, reason: .guestUnreachable)
            return
        }
        if binding.backlog.count == binding.backlogHead {
            // Timed before the send: a frame timed after QEMU's STOP must not have reached the
            // guest before it (the freeze copies those on, §8.6.1), and a time taken after the
            // send could fall after the STOP for a frame QEMU read before it.
            let handedAt = shell.core.settings.holdFramesDuringMoves ? Self.wallClock() : 0
            switch binding.socket.send(frame, to: binding.vmAddress) {
            case .sent:
                shell.ports[port]?.fruitlessDrains = 0  // the VM reads again: drain at full speed
                remember(frame, sentTo: port, at: handedAt, shell)
                return
            case let .failed(code) where code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS:
                break
            case let .failed(code):
                shell.core.recordDeliveryFailure(port: port, reason: .guestUnreachable)
                logger.trace("frame to VM not delivered", metadata: ["vswitch.port": "\(port)", "errno": "\(code)"])
                return
            }
        }
        guard held || binding.backlog.count - binding.backlogHead - binding.heldInBacklog < Self.maxBacklog else {
            shell.core.recordDeliveryFailure(port: port, reason: .guestBusy)
            return
        }
        shell.ports[port]?.backlog.append(frame)
        if held { shell.ports[port]?.heldInBacklog += 1 }
        scheduleDrain(port, shell)
    }

    /// Notes a frame handed to the VM's socket (`PortBinding.recentlySent`), when frames are
    /// held during moves.
    private func remember(_ frame: ByteBuffer, sentTo port: PortID, at handedAt: Double, _ shell: SwitchShellState) {
        guard shell.core.settings.holdFramesDuringMoves else { return }
        // In place: a copy of the binding would copy its arrays for every frame.
        if shell.ports[port] != nil { Self.remember(frame, at: handedAt, in: &shell.ports[port]!) }
    }

    /// `handedAt`: the wall clock just before the frame was sent.
    static func remember(_ frame: ByteBuffer, at handedAt: Double, in binding: inout SwitchShellState.PortBinding) {
        binding.recentlySent.append(SwitchShellState.SentFrame(frame: frame, at: handedAt))
        if binding.recentlySent.count >= 2 * SwitchShellState.recentlySentKept {
            binding.recentlySent.removeFirst(binding.recentlySent.count - SwitchShellState.recentlySentKept)
        }
    }

    /// Seconds since the Unix epoch: the clock of QEMU's event timestamps on this host.
    static func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    private func scheduleDrain(_ port: PortID, _ shell: SwitchShellState) {
        guard let binding = shell.ports[port], !binding.drainScheduled else { return }
        shell.ports[port]?.drainScheduled = true
        eventLoop.scheduleTask(in: Self.drainDelay(afterFruitless: binding.fruitlessDrains)) { self.drain(port) }
    }

    /// Sends held-back frames until the VM's socket is full again. On the loop.
    func drain(_ port: PortID) {
        let shell = runtime.state
        guard var binding = shell.ports[port] else { return }
        binding.drainScheduled = false
        binding.drainFirings += 1
        let headBefore = binding.backlogHead
        while binding.backlogHead < binding.backlog.count {
            let handedAt = shell.core.settings.holdFramesDuringMoves ? Self.wallClock() : 0  // before the send (see `deliver`)
            let result = binding.socket.send(binding.backlog[binding.backlogHead], to: binding.vmAddress)
            if case let .failed(code) = result {
                if code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS { break }
                shell.core.recordDeliveryFailure(port: port, reason: .guestUnreachable)
            } else if shell.core.settings.holdFramesDuringMoves {
                Self.remember(binding.backlog[binding.backlogHead], at: handedAt, in: &binding)
            }
            binding.backlogHead += 1
        }
        // Back off only while nothing moves; one frame through means the VM runs again.
        binding.fruitlessDrains = binding.backlogHead == headBefore ? binding.fruitlessDrains + 1 : 0
        // Held frames were appended before any later frame (the hold releases them first).
        binding.heldInBacklog = max(0, binding.heldInBacklog - (binding.backlogHead - headBefore))
        if binding.backlogHead == binding.backlog.count {
            binding.backlog.removeAll(keepingCapacity: true)
            binding.backlogHead = 0
        } else if binding.backlogHead > 64 {
            binding.backlog.removeFirst(binding.backlogHead)
            binding.backlogHead = 0
        }
        shell.ports[port] = binding
        if !binding.backlog.isEmpty { scheduleDrain(port, shell) }
    }

    private func sendOverlay(_ payload: ByteBuffer, kind: OverlayHeader.Kind, segment: UInt32, flags: UInt8, to host: HostID,
                             _ shell: SwitchShellState) {
        guard let socket = shell.overlaySocket else {
            shell.overlay.recordSendFailure()
            return
        }
        guard let (datagram, address) = shell.overlay.seal(payload, kind: kind, segment: segment, flags: flags, to: host,
                                                           allocator: shell.allocator) else {
            logger.trace("no overlay peer", metadata: ["mesh.peer": "\(host)"])
            return
        }
        if case let .failed(code) = socket.send(datagram, to: address) {
            shell.overlay.recordSendFailure()
            logger.trace("overlay send failed", metadata: ["mesh.peer": "\(host)", "errno": "\(code)"])
        }
    }

    private func log(_ event: SwitchEvent) {
        switch event {
        case let .publish(locations):
            logger.trace("locations to publish", metadata: ["vswitch.locations": "\(locations)"])
        case let .portActivated(port, location):
            logger.debug("port activated", metadata: ["vswitch.port": "\(port)", "vswitch.location": "\(location)"])
        case let .activationTimedOut(port):
            logger.debug("port activation timed out", metadata: ["vswitch.port": "\(port)"])
        case let .portRemoved(port):
            logger.debug("straggler grace over, port removed", metadata: ["vswitch.port": "\(port)"])
        case let .locationLost(port, host, sequence):
            logger.debug("port's MAC claimed elsewhere", metadata: ["vswitch.port": "\(port)", "mesh.peer": "\(host)", "vswitch.sequence": "\(sequence)"])
        case let .duplicateMAC(mac, segment, hosts, sequence):
            logger.debug("duplicate MAC", metadata: ["vswitch.mac": "\(mac)", "vswitch.segment": "\(segment)",
                                                     "vswitch.hosts": "\(hosts)", "vswitch.sequence": "\(sequence)"])
        case let .macFrozen(mac, segment, host, moves):
            logger.debug("MAC frozen after too many moves", metadata: ["vswitch.mac": "\(mac)", "vswitch.segment": "\(segment)",
                                                                       "mesh.peer": "\(host)", "vswitch.moves": "\(moves)"])
        }
    }

    /// One datagram from the overlay socket. On the loop.
    func onOverlayDatagram(_ datagram: ByteBuffer) {
        let shell = runtime.state
        switch shell.overlay.open(datagram, allocator: shell.allocator) {
        case let .frame(host, segment, frame, forwarded, flooded):
            execute(shell.core.onFrameFromOverlay(from: host, segment: segment, frame: frame, forwarded: forwarded, flooded: flooded, now: now()), shell)
        case let .control(host, payload):
            do {
                var locations = try OverlayControlCodec.decode(payload)
                if let link = shell.overlay.link(of: host) { locations = link.incoming(locations, peer: host) }
                execute(shell.core.onLocations(locations, from: .direct(host), now: now()), shell)
            } catch {
                logger.debug("undecodable control datagram", metadata: ["mesh.peer": "\(host)", "error": "\(error)"])
            }
        case let .dropped(reason):
            logger.trace("overlay datagram dropped", metadata: ["vswitch.reason": "\(reason.rawValue)"])
        }
    }

    /// One datagram from a port's socket. On the loop.
    func onPortDatagram(_ port: PortID, _ frame: ByteBuffer) {
        let shell = runtime.state
        if shell.core.settings.holdFramesDuringMoves, shell.ports[port] != nil { shell.ports[port]!.lastFrameFromVM = Self.wallClock() }
        if shell.ports[port]?.tracingFrames == true {
            shell.ports[port]?.framesAfterActivation.append((Self.wallClock(), FrameKind.of(frame)))
            if shell.ports[port]?.framesAfterActivation.count == SwitchShellState.tracedFramesKept { shell.ports[port]?.tracingFrames = false }
        }
        execute(shell.core.onFrameFromPort(port, frame: frame, now: now()), shell)
    }
}

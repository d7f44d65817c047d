import Logging
import NIOCore

extension VirtualSwitch {
    /// Carries out the core's directives, in order. On the loop.
    func execute(_ directives: [SwitchDirective], _ shell: ShellState) {
        for directive in directives {
            switch directive {
            case let .deliver(port, frame):
                guard let binding = shell.ports[port] else { continue }
                if case let .failed(code) = binding.socket.send(frame, to: binding.vmAddress) {
                    shell.core.recordDeliveryFailure(port: port)
                    logger.trace("frame to VM not delivered", metadata: ["vswitch.port": "\(port)", "errno": "\(code)"])
                }
            case let .sendFrame(host, segment, frame, forwarded):
                sendOverlay(frame, kind: .frame, segment: segment.rawValue,
                            flags: forwarded ? OverlayHeader.flagForwarded : 0, to: host, shell)
            case let .sendLocations(locations, hosts):
                let payload = shell.allocator.buffer(bytes: OverlayControlCodec.encode(locations))
                for host in hosts { sendOverlay(payload, kind: .control, segment: 0, flags: 0, to: host, shell) }
            case let .event(event):
                log(event)
                eventSink.yield(event)
            }
        }
    }

    private func sendOverlay(_ payload: ByteBuffer, kind: OverlayHeader.Kind, segment: UInt32, flags: UInt8, to host: HostID,
                             _ shell: ShellState) {
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
        let shell = state.value
        switch shell.overlay.open(datagram, allocator: shell.allocator) {
        case let .frame(host, segment, frame, forwarded):
            execute(shell.core.onFrameFromOverlay(from: host, segment: segment, frame: frame, forwarded: forwarded, now: now()), shell)
        case let .control(host, payload):
            do {
                let locations = try OverlayControlCodec.decode(payload)
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
        let shell = state.value
        execute(shell.core.onFrameFromPort(port, frame: frame, now: now()), shell)
    }
}

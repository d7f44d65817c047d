public import MeshTime
public import NIOCore

extension SwitchCore {
    /// A frame the VM behind `port` sent.
    public mutating func onFrameFromPort(_ id: PortID, frame: ByteBuffer, now: MeshInstant) -> [SwitchDirective] {
        guard var port = ports[id] else {
            counters.unknownPort &+= 1
            return []
        }
        switch port.lifecycle {
        case .frozen, .forwardingStragglers:
            // The VM is paused or gone; a frozen port's counters are final.
            counters.toInactivePort &+= 1
            return []
        case .blocked, .active:
            break
        }
        port.local.countReceived(frame.readableBytes)
        guard let header = EthernetHeader(frame) else {
            port.local.countDrop(.malformed)
            counters.countPortDrop(.malformed)
            ports[id] = port
            return []
        }
        if port.lifecycle == .blocked {
            guard port.isAnnouncement(frame, header: header) else {
                port.local.countDrop(.portBlocked)
                counters.countPortDrop(.portBlocked)
                ports[id] = port
                return []
            }
            ports[id] = port
            activate(id, now: now)
            port = ports[id]!  // activate only changed lifecycle and the claim flag
        }
        let (result, learnedNew) = port.admitFromVM(frame, header: header, now: now)
        ports[id] = port
        if case let .drop(reason) = result {
            ports[id]?.local.countDrop(reason)
            counters.countPortDrop(reason)
            return takeOutput()
        }
        if port.lostLocation || learnedNew {
            // Re-claim a MAC another host took (counts as a move), or refresh the addresses.
            claim(id, now: now)
        }
        forward(frame, header: header, from: port, now: now)
        return takeOutput()
    }

    /// A frame a peer sent over the overlay for `segment` (already authenticated and decrypted).
    /// Frames from the overlay are never sent back to the overlay, except by a straggler-
    /// forwarding port, once (`forwarded`), and by a stretched link's gateway (§8.9).
    /// `flooded`: the sender flooded it (one copy to each host of its flood list), so a gateway
    /// does not relay it (every gateway got a copy).
    public mutating func onFrameFromOverlay(from host: HostID, segment: SegmentID, frame: ByteBuffer, forwarded: Bool,
                                            flooded: Bool = false, now: MeshInstant) -> [SwitchDirective] {
        guard networkBySegment[segment] != nil else {
            counters.unknownSegment &+= 1
            return []
        }
        guard let header = EthernetHeader(frame) else {
            counters.noLocalDestination &+= 1
            return []
        }
        counters.overlayFramesIn &+= 1
        if header.destination.isMulticast {
            floodLocally(frame, header: header, segment: segment, except: nil, now: now)
        } else if let target = portsByMAC[LocationTable.Key(mac: header.destination, segment: segment)] {
            deliver(frame, header: header, to: target, forwarded: forwarded, now: now)
        } else if !flooded, let relay = gatewayTarget(from: host, destination: header.destination, segment: segment, forwarded: forwarded) {
            counters.gatewayRelayed &+= 1
            sendRemote(frame, to: relay, segment: segment, forwarded: true)
        } else {
            counters.noLocalDestination &+= 1
        }
        return takeOutput()
    }

    /// Reports that a `.deliver` directive failed: `.guestUnreachable` (the VM's socket is
    /// gone) or `.guestBusy` (it did not drain in time).
    public mutating func recordDeliveryFailure(port id: PortID, reason: DropReason = .guestUnreachable) {
        guard ports[id] != nil else { return }
        ports[id]?.local.countDrop(reason)
        counters.countPortDrop(reason)
    }

    // MARK: forwarding

    private mutating func forward(_ frame: ByteBuffer, header: EthernetHeader, from source: Port, now: MeshInstant) {
        let segment = source.segment
        if header.destination.isMulticast {
            if settings.proxyARP, header.etherType == EtherType.arp, answerARP(frame, from: source, now: now) { return }
            floodLocally(frame, header: header, segment: segment, except: source.configuration.id, now: now)
            floodRemotely(frame, segment: segment)
            return
        }
        let local = portsByMAC[LocationTable.Key(mac: header.destination, segment: segment)]
        if let local, ports[local]?.lifecycle != .blocked {
            deliver(frame, header: header, to: local, forwarded: false, now: now)
            return
        }
        // No local port, or an incoming migration's blocked one: until the VM announces itself
        // here, it still runs where the location table says (pre-copy can take seconds).
        let remote = locations.entry(mac: header.destination, segment: segment).flatMap { $0.location.host != localHost ? $0.location.host : nil }
        if let local, remote == nil {
            deliver(frame, header: header, to: local, forwarded: false, now: now)
        } else if let remote {
            sendRemote(frame, to: remote, segment: segment, forwarded: false)
        } else {
            // Unknown unicast: flood like a broadcast.
            floodLocally(frame, header: header, segment: segment, except: source.configuration.id, now: now)
            floodRemotely(frame, segment: segment)
        }
    }

    /// Proxy ARP: answers a request from a known binding; true if answered.
    private mutating func answerARP(_ frame: ByteBuffer, from source: Port, now: MeshInstant) -> Bool {
        guard let arp = ARPPacket(frame: frame), arp.operation == ARPPacket.request, !arp.isGratuitous,
              arp.senderIP != .unspecifiedV4,
              let mac = locations.mac(for: arp.targetIP, segment: source.segment), mac != source.mac
        else { return false }
        let reply = ARPPacket(operation: ARPPacket.reply, senderMAC: mac, senderIP: arp.targetIP,
                              targetMAC: arp.senderMAC, targetIP: arp.senderIP)
        let replyFrame = reply.frame(destination: arp.senderMAC, source: mac, allocator: allocator)
        ports[source.configuration.id]?.local.countDelivered(replyFrame.readableBytes)
        output.append(.deliver(port: source.configuration.id, frame: replyFrame))
        return true
    }

    private mutating func deliver(_ frame: ByteBuffer, header: EthernetHeader, to id: PortID, forwarded: Bool, now: MeshInstant) {
        guard var port = ports[id] else { return }
        if port.lifecycle == .frozen, let destination = port.frozenFor, !forwarded {
            // Frozen for a move: straight on to the destination's holding port (§8.6.1).
            counters.heldFramesForwarded &+= 1
            sendRemote(frame, to: destination, segment: port.segment, forwarded: true)
            return
        }
        if holds(port) {
            // Paused, frozen or blocked: held in order, delivered or sent on later (§8.6.1).
            hold(frame, for: id, now: now)
            return
        }
        switch port.lifecycle {
        case .active:
            if let reason = port.admitToVM(frame, header: header, now: now) {
                port.local.countDrop(reason)
                counters.countPortDrop(reason)
            } else {
                port.local.countDelivered(frame.readableBytes)
                output.append(.deliver(port: id, frame: frame))
            }
            ports[id] = port
        case let .forwardingStragglers(host, _):
            guard !forwarded else {
                counters.noLocalDestination &+= 1
                return
            }
            counters.stragglersForwarded &+= 1
            // The VM may have moved on again since it left: follow its newest location.
            let newest = locations.entry(mac: port.mac, segment: port.segment)?.location.host
            sendRemote(frame, to: newest.flatMap { $0 != localHost ? $0 : nil } ?? host, segment: port.segment, forwarded: true)
        case .blocked, .frozen:
            counters.toInactivePort &+= 1
        }
    }

    private mutating func floodLocally(_ frame: ByteBuffer, header: EthernetHeader, segment: SegmentID, except: PortID?, now: MeshInstant) {
        for id in portsBySegment[segment] ?? [] where id != except && ports[id]?.isActive == true {
            deliver(frame, header: header, to: id, forwarded: true, now: now)
        }
    }

    private mutating func floodRemotely(_ frame: ByteBuffer, segment: SegmentID) {
        for host in locations.floodHosts(segment: segment) {
            sendRemote(frame, to: host, segment: segment, forwarded: false, flooded: true)
        }
    }

    private mutating func sendRemote(_ frame: ByteBuffer, to host: HostID, segment: SegmentID, forwarded: Bool, flooded: Bool = false) {
        counters.overlayFramesOut &+= 1
        output.append(.sendFrame(to: host, segment: segment, frame: frame, forwarded: forwarded, flooded: flooded))
    }
}

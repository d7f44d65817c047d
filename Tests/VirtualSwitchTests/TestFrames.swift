import MeshTime
import NIOCore
@testable import VirtualSwitch

/// Builds Ethernet frames for the core tests (checksums are not computed: the switch never
/// looks at them).
enum TestFrames {
    static let allocator = ByteBufferAllocator()

    static func ethernet(from source: MACAddress, to destination: MACAddress, etherType: UInt16, payload: [UInt8]) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 14 + payload.count)
        EthernetHeader.write(destination: destination, source: source, etherType: etherType, to: &buffer)
        buffer.writeBytes(payload)
        return buffer
    }

    /// IPv4 header (20 bytes) plus `transport`.
    static func ipv4(from source: MACAddress, to destination: MACAddress, src: IPAddress, dst: IPAddress, proto: UInt8,
                     transport: [UInt8]) -> ByteBuffer {
        var header: [UInt8] = [0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0]
        let total = UInt16(20 + transport.count)
        header[2] = UInt8(total >> 8)
        header[3] = UInt8(total & 0xFF)
        return ethernet(from: source, to: destination, etherType: EtherType.ipv4, payload: header + src.bytes + dst.bytes + transport)
    }

    static func tcp(from source: MACAddress, to destination: MACAddress, src: IPAddress, sport: UInt16, dst: IPAddress, dport: UInt16,
                    flags: UInt8) -> ByteBuffer {
        var segment = [UInt8](repeating: 0, count: 20)
        segment[0] = UInt8(sport >> 8); segment[1] = UInt8(sport & 0xFF)
        segment[2] = UInt8(dport >> 8); segment[3] = UInt8(dport & 0xFF)
        segment[12] = 0x50
        segment[13] = flags
        return ipv4(from: source, to: destination, src: src, dst: dst, proto: IPProtocol.tcp, transport: segment)
    }

    static func udp(from source: MACAddress, to destination: MACAddress, src: IPAddress, sport: UInt16, dst: IPAddress, dport: UInt16,
                    payload: [UInt8] = [1, 2, 3, 4]) -> ByteBuffer {
        let length = UInt16(8 + payload.count)
        let header: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF),
                               UInt8(length >> 8), UInt8(length & 0xFF), 0, 0]
        return ipv4(from: source, to: destination, src: src, dst: dst, proto: IPProtocol.udp, transport: header + payload)
    }

    static func icmpEcho(from source: MACAddress, to destination: MACAddress, src: IPAddress, dst: IPAddress, reply: Bool = false,
                         identifier: UInt16 = 0x1234, sequence: UInt16 = 1) -> ByteBuffer {
        let message: [UInt8] = [reply ? 0 : 8, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xFF),
                                UInt8(sequence >> 8), UInt8(sequence & 0xFF)] + [UInt8](repeating: 0xAB, count: 32)
        return ipv4(from: source, to: destination, src: src, dst: dst, proto: IPProtocol.icmp, transport: message)
    }

    static func arpRequest(from mac: MACAddress, ip: IPAddress, asking target: IPAddress) -> ByteBuffer {
        ARPPacket(operation: ARPPacket.request, senderMAC: mac, senderIP: ip, targetMAC: .zero, targetIP: target)
            .frame(destination: .broadcast, source: mac)
    }

    static func gratuitousARP(from mac: MACAddress, ip: IPAddress) -> ByteBuffer {
        ARPPacket(operation: ARPPacket.request, senderMAC: mac, senderIP: ip, targetMAC: .zero, targetIP: ip)
            .frame(destination: .broadcast, source: mac)
    }

    /// What QEMU's announce-self sends.
    static func rarp(from mac: MACAddress) -> ByteBuffer {
        ARPPacket(operation: ARPPacket.reverseRequest, senderMAC: mac, senderIP: .unspecifiedV4, targetMAC: mac, targetIP: .unspecifiedV4)
            .frame(destination: .broadcast, source: mac, etherType: EtherType.rarp)
    }
}

extension MACAddress {
    static func test(_ last: UInt8) -> MACAddress { MACAddress(rawValue: 0x5254_0000_0000 | UInt64(last)) }
}

extension IPAddress {
    static func test(_ last: UInt8) -> IPAddress { .v4(0x0A4D_0000 | UInt32(last)) }
}

extension MeshInstant {
    static func at(seconds: Double) -> MeshInstant { MeshInstant(nanosecondsSinceOrigin: Int64(seconds * 1e9)) }
}

/// A core with one network ("net", segment 100) and helpers to inspect directives.
struct CoreFixture {
    var core: SwitchCore
    static let segment: SegmentID = 100

    init(host: HostID = "host-a", settings: SwitchSettings = SwitchSettings()) {
        core = SwitchCore(localHost: host, settings: settings)
        try! core.addNetwork(Network(name: "net", segment: Self.segment))
    }

    static func port(_ n: UInt8, policy: SecurityPolicy = SecurityPolicy(), allowed: [IPPrefix]? = nil) -> PortConfiguration {
        PortConfiguration(id: PortID("vm\(n)/eth0"), network: "net", mac: .test(n),
                          allowedIPs: allowed ?? [IPPrefix(host: .test(n))], policy: policy)
    }

    @discardableResult
    mutating func addPort(_ n: UInt8, policy: SecurityPolicy = SecurityPolicy(), allowed: [IPPrefix]? = nil,
                          state: SwitchCore.InitialState = .active, now: MeshInstant = .origin) -> [SwitchDirective] {
        try! core.createPort(Self.port(n, policy: policy, allowed: allowed), initialState: state, now: now)
    }
}

extension [SwitchDirective] {
    /// Ports frames were delivered to, in order.
    var deliveredPorts: [PortID] {
        compactMap { if case let .deliver(port, _, _) = $0 { return port } else { return nil } }
    }

    /// Frames delivered to `port`.
    func delivered(to port: PortID) -> [ByteBuffer] {
        compactMap { if case let .deliver(p, frame, _) = $0, p == port { return frame } else { return nil } }
    }

    /// Hosts frames were sent to over the overlay.
    var overlayHosts: [HostID] {
        compactMap { if case let .sendFrame(host, _, _, _, _) = $0 { return host } else { return nil } }
    }

    /// (host, forwarded) of overlay sends.
    var overlaySends: [(HostID, Bool)] {
        compactMap { if case let .sendFrame(host, _, _, forwarded, _) = $0 { return (host, forwarded) } else { return nil } }
    }

    /// Location pushes: (locations, hosts).
    var locationPushes: [([MACLocation], [HostID])] {
        compactMap { if case let .sendLocations(locations, hosts) = $0 { return (locations, hosts) } else { return nil } }
    }

    /// Events.
    var events: [SwitchEvent] {
        compactMap { if case let .event(event) = $0 { return event } else { return nil } }
    }
}

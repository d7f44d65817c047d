import Foundation
import MeshWire

/// Conversions between the switch's Swift values and their protobuf form (vswitch.proto).
/// Decoding validates every field and throws a `WireDecodingError` naming it.
enum Wire {
    static func ip(_ address: IPAddress) -> Data { Data(address.bytes) }

    static func ip(_ data: Data, field: String) throws(WireDecodingError) -> IPAddress {
        guard let address = IPAddress(bytes: data) else { throw .invalidField(field, "an address must be 4 or 16 bytes, got \(data.count)") }
        return address
    }

    static func mac(_ data: Data, field: String) throws(WireDecodingError) -> MACAddress {
        guard let mac = MACAddress(bytes: data) else { throw .invalidField(field, "a MAC must be 6 bytes, got \(data.count)") }
        return mac
    }

    static func prefix(_ prefix: IPPrefix) -> Hostmesh_V1_VSwitchIPPrefix {
        var wire = Hostmesh_V1_VSwitchIPPrefix()
        wire.address = ip(prefix.address)
        wire.length = UInt32(prefix.length)
        return wire
    }

    static func prefix(_ wire: Hostmesh_V1_VSwitchIPPrefix, field: String) throws(WireDecodingError) -> IPPrefix {
        let address = try ip(wire.address, field: field)
        guard let prefix = IPPrefix(address: address, length: Int(wire.length)) else {
            throw .invalidField(field, "prefix length \(wire.length) is too long for \(address)")
        }
        return prefix
    }

    // MARK: locations

    static func location(_ location: MACLocation) -> Hostmesh_V1_VSwitchMACLocation {
        var wire = Hostmesh_V1_VSwitchMACLocation()
        wire.mac = Data(location.mac.bytes)
        wire.segment = location.segment.rawValue
        wire.host = location.host.rawValue
        wire.sequence = location.sequence
        wire.ips = location.ips.map(ip)
        wire.withdrawn = location.withdrawn
        return wire
    }

    static func location(_ wire: Hostmesh_V1_VSwitchMACLocation) throws(WireDecodingError) -> MACLocation {
        let mac = try mac(wire.mac, field: "location.mac")
        guard !mac.isMulticast else { throw .invalidField("location.mac", "\(mac) is multicast") }
        guard SegmentID(wire.segment).isValid else { throw .invalidField("location.segment", "\(wire.segment) is out of range") }
        guard !wire.host.isEmpty else { throw .invalidField("location.host", "empty") }
        var ips: [IPAddress] = []
        for data in wire.ips { ips.append(try ip(data, field: "location.ips")) }
        return MACLocation(mac: mac, segment: SegmentID(wire.segment), host: HostID(wire.host), sequence: wire.sequence,
                           ips: ips, withdrawn: wire.withdrawn)
    }

    // MARK: policy

    static func policy(_ policy: SecurityPolicy) -> Hostmesh_V1_VSwitchSecurityPolicy {
        var wire = Hostmesh_V1_VSwitchSecurityPolicy()
        wire.antiSpoofing = policy.antiSpoofing
        wire.ingress = rules(policy.ingress)
        wire.egress = rules(policy.egress)
        wire.allowIpv6LinkLocal = policy.allowIPv6LinkLocal
        wire.allowDhcpClient = policy.allowDHCPClient
        wire.strictTcp = !policy.looseTCPPickup
        return wire
    }

    static func policy(_ wire: Hostmesh_V1_VSwitchSecurityPolicy) throws(WireDecodingError) -> SecurityPolicy {
        SecurityPolicy(antiSpoofing: wire.antiSpoofing, ingress: try rules(wire.ingress, field: "policy.ingress"),
                       egress: try rules(wire.egress, field: "policy.egress"),
                       allowIPv6LinkLocal: wire.allowIpv6LinkLocal, allowDHCPClient: wire.allowDhcpClient,
                       looseTCPPickup: !wire.strictTcp)
    }

    private static func rules(_ rules: FirewallRules) -> Hostmesh_V1_VSwitchRuleSet {
        var wire = Hostmesh_V1_VSwitchRuleSet()
        switch rules {
        case .allowAll:
            wire.allowAll = true
        case let .rules(list):
            wire.rules = list.map { rule in
                var r = Hostmesh_V1_VSwitchRule()
                r.protocol = UInt32(rule.proto ?? 0)
                r.portMin = UInt32(rule.ports?.lowerBound ?? 0)
                r.portMax = UInt32(rule.ports?.upperBound ?? 0)
                if let remote = rule.remote { r.remote = prefix(remote) }
                return r
            }
        }
        return wire
    }

    private static func rules(_ wire: Hostmesh_V1_VSwitchRuleSet, field: String) throws(WireDecodingError) -> FirewallRules {
        if wire.allowAll { return .allowAll }
        var list: [FirewallRule] = []
        for r in wire.rules {
            guard r.protocol <= 255, r.portMin <= 65535, r.portMax <= 65535, r.portMin <= r.portMax else {
                throw .invalidField(field, "rule protocol \(r.protocol) ports \(r.portMin)-\(r.portMax) is out of range")
            }
            let ports: ClosedRange<UInt16>? = r.portMin == 0 && r.portMax == 0 ? nil : UInt16(r.portMin)...UInt16(r.portMax)
            list.append(FirewallRule(proto: r.protocol == 0 ? nil : UInt8(r.protocol), ports: ports,
                                     remote: r.hasRemote ? try prefix(r.remote, field: field) : nil))
        }
        return .rules(list)
    }

    // MARK: counters, learned, connections

    static func counters(_ counters: PortCounters) -> Hostmesh_V1_VSwitchCounters {
        var wire = Hostmesh_V1_VSwitchCounters()
        wire.rxFrames = counters.rxFrames
        wire.rxBytes = counters.rxBytes
        wire.txFrames = counters.txFrames
        wire.txBytes = counters.txBytes
        wire.drops = Dictionary(uniqueKeysWithValues: counters.drops.map { ($0.key.rawValue, $0.value) })
        return wire
    }

    /// Drop reasons this implementation does not know are kept out (a newer peer's reasons).
    static func counters(_ wire: Hostmesh_V1_VSwitchCounters) -> PortCounters {
        var counters = PortCounters()
        counters.rxFrames = wire.rxFrames
        counters.rxBytes = wire.rxBytes
        counters.txFrames = wire.txFrames
        counters.txBytes = wire.txBytes
        for (name, count) in wire.drops {
            if let reason = DropReason(rawValue: name) { counters.drops[reason] = count }
        }
        return counters
    }

    static func learned(_ address: LearnedAddress) -> Hostmesh_V1_VSwitchLearnedAddress {
        var wire = Hostmesh_V1_VSwitchLearnedAddress()
        wire.ip = ip(address.ip)
        wire.idleMs = address.idleMilliseconds
        return wire
    }

    static func learned(_ wire: Hostmesh_V1_VSwitchLearnedAddress) throws(WireDecodingError) -> LearnedAddress {
        LearnedAddress(ip: try ip(wire.ip, field: "learned.ip"), idleMilliseconds: wire.idleMs)
    }

    static func connection(_ connection: TrackedConnection) -> Hostmesh_V1_VSwitchConnection {
        var wire = key(connection.key)
        wire.origin = connection.origin == .egress ? .egress : .ingress
        wire.state = switch connection.state {
        case .new: .new
        case .established: .established
        case .closing: .closing
        }
        wire.idleMs = connection.idleMilliseconds
        wire.tcpFinFlags = UInt32(connection.finFlags)
        return wire
    }

    static func key(_ key: ConnectionKey) -> Hostmesh_V1_VSwitchConnection {
        var wire = Hostmesh_V1_VSwitchConnection()
        wire.protocol = UInt32(key.proto)
        wire.localIp = ip(key.localIP)
        wire.localPort = UInt32(key.localPort)
        wire.remoteIp = ip(key.remoteIP)
        wire.remotePort = UInt32(key.remotePort)
        return wire
    }

    static func key(_ wire: Hostmesh_V1_VSwitchConnection) throws(WireDecodingError) -> ConnectionKey {
        guard wire.protocol <= 255, wire.localPort <= 65535, wire.remotePort <= 65535 else {
            throw .invalidField("connection", "protocol \(wire.protocol) or ports \(wire.localPort)/\(wire.remotePort) out of range")
        }
        let local = try ip(wire.localIp, field: "connection.local_ip")
        let remote = try ip(wire.remoteIp, field: "connection.remote_ip")
        guard local.isV4 == remote.isV4 else { throw .invalidField("connection", "mixes IPv4 and IPv6 (\(local), \(remote))") }
        return ConnectionKey(proto: UInt8(wire.protocol), localIP: local, localPort: UInt16(wire.localPort),
                             remoteIP: remote, remotePort: UInt16(wire.remotePort))
    }

    static func connection(_ wire: Hostmesh_V1_VSwitchConnection) throws(WireDecodingError) -> TrackedConnection {
        let origin: TrafficDirection
        switch wire.origin {
        case .egress: origin = .egress
        case .ingress: origin = .ingress
        case let .UNRECOGNIZED(value): throw .invalidField("connection.origin", "unknown value \(value)")
        }
        let state: ConnectionState
        switch wire.state {
        case .new: state = .new
        case .established: state = .established
        case .closing: state = .closing
        case let .UNRECOGNIZED(value): throw .invalidField("connection.state", "unknown value \(value)")
        }
        return TrackedConnection(key: try key(wire), origin: origin, state: state, idleMilliseconds: wire.idleMs,
                                 finFlags: UInt8(truncatingIfNeeded: wire.tcpFinFlags & 3))
    }
}

/// A protobuf message of the virtual switch that could not be decoded, and why.
public enum WireDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Not valid protobuf for the expected message.
    case malformed(message: String, reason: String)
    /// A format version this implementation does not know.
    case unsupportedVersion(message: String, version: UInt32)
    /// A field with an invalid value.
    case invalidField(String, String)

    public var description: String {
        switch self {
        case let .malformed(message, reason):
            return "\(message) is not valid protobuf (\(reason)): the sender runs an incompatible version or the bytes were cut"
        case let .unsupportedVersion(message, version):
            return "\(message) has format version \(version), this host understands 1: upgrade this host"
        case let .invalidField(field, reason):
            return "field \(field) is invalid: \(reason)"
        }
    }
}

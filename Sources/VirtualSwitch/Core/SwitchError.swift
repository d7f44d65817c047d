/// A switch operation that cannot be carried out, with the cause and the fix.
public enum SwitchError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A network name that is already defined with another segment.
    case networkExists(name: String, segment: SegmentID)
    /// A segment id outside 1...16777215.
    case invalidSegment(SegmentID)
    /// Another network already uses the segment id.
    case segmentInUse(SegmentID, network: String)
    /// The port refers to a network this switch does not have.
    case unknownNetwork(String)
    /// No such port.
    case unknownPort(PortID)
    /// A port with this id exists already.
    case portExists(PortID)
    /// Another port on the segment has the MAC.
    case macInUse(MACAddress, segment: SegmentID, port: PortID)
    /// A multicast or zero MAC cannot be a port's address.
    case invalidMAC(MACAddress)
    /// The operation needs the port in another lifecycle state.
    case wrongState(PortID, is: PortLifecycle, operation: String)
    /// A port state record or delta that cannot be used.
    case invalidRecord(String)
    /// Ports are still on the network.
    case networkInUse(String, ports: [PortID])

    public var description: String {
        switch self {
        case let .networkExists(name, segment):
            return "network \"\(name)\" already exists with segment \(segment): remove it first or use another name"
        case let .invalidSegment(segment):
            return "segment id \(segment) is out of range: use 1 to 16777215"
        case let .segmentInUse(segment, network):
            return "segment id \(segment) is already used by network \"\(network)\": give each network its own segment"
        case let .unknownNetwork(name):
            return "no network \"\(name)\" on this switch: add it (addNetwork) before creating ports on it"
        case let .unknownPort(id):
            return "no port \"\(id)\" on this switch: check the port id (vm id/nic id) or create the port"
        case let .portExists(id):
            return "port \"\(id)\" already exists: remove it first or import into it with applyDelta"
        case let .macInUse(mac, segment, port):
            return "MAC \(mac) is already used on segment \(segment) by port \"\(port)\": give each NIC a unique MAC"
        case let .invalidMAC(mac):
            return "MAC \(mac) is multicast or zero: a NIC needs a unicast MAC such as 52:54:00:12:34:56"
        case let .wrongState(id, state, operation):
            return "cannot \(operation) port \"\(id)\" while it is \(state)"
        case let .invalidRecord(reason):
            return "port state record rejected: \(reason)"
        case let .networkInUse(name, ports):
            return "network \"\(name)\" still has ports \(ports.map(\.rawValue).joined(separator: ", ")): remove them first"
        }
    }
}

import Foundation
import MeshWire

extension PortStateRecord {
    /// The protobuf encoding (`VSwitchPortState`), for the migration's control messages.
    public func serializedBytes() -> [UInt8] {
        var wire = Hostmesh_V1_VSwitchPortState()
        wire.version = Self.formatVersion
        wire.portID = configuration.id.rawValue
        wire.network = configuration.network
        wire.segment = segment.rawValue
        wire.mac = Data(configuration.mac.bytes)
        wire.allowedIps = configuration.allowedIPs.map(Wire.prefix)
        wire.policy = Wire.policy(configuration.policy)
        wire.counters = Wire.counters(counters)
        wire.learned = learned.map(Wire.learned)
        wire.connections = connections.map(Wire.connection)
        wire.generation = generation
        wire.mobilitySequence = mobilitySequence
        // Proto3 without required fields or `Any`: encoding cannot throw, so `[]` is never returned.
        return (try? wire.serializedBytes()) ?? []
    }

    /// Decodes a record.
    public init(serializedBytes bytes: [UInt8]) throws(WireDecodingError) {
        let name = "port state record"
        let wire: Hostmesh_V1_VSwitchPortState
        do {
            wire = try Hostmesh_V1_VSwitchPortState(serializedBytes: bytes)
        } catch {
            throw .malformed(message: name, reason: "\(error)")
        }
        guard wire.version == Self.formatVersion else { throw .unsupportedVersion(message: name, version: wire.version) }
        guard !wire.portID.isEmpty else { throw .invalidField("port_id", "empty") }
        guard !wire.network.isEmpty else { throw .invalidField("network", "empty") }
        var allowed: [IPPrefix] = []
        for prefix in wire.allowedIps { allowed.append(try Wire.prefix(prefix, field: "allowed_ips")) }
        let configuration = PortConfiguration(id: PortID(wire.portID), network: wire.network,
                                              mac: try Wire.mac(wire.mac, field: "mac"), allowedIPs: allowed,
                                              policy: try Wire.policy(wire.policy))
        var learned: [LearnedAddress] = []
        for address in wire.learned { learned.append(try Wire.learned(address)) }
        var connections: [TrackedConnection] = []
        for connection in wire.connections { connections.append(try Wire.connection(connection)) }
        self.init(configuration: configuration, segment: SegmentID(wire.segment), counters: Wire.counters(wire.counters),
                  learned: learned, connections: connections, generation: wire.generation, mobilitySequence: wire.mobilitySequence)
    }
}

extension PortStateDelta {
    /// The protobuf encoding (`VSwitchPortStateDelta`).
    public func serializedBytes() -> [UInt8] {
        var wire = Hostmesh_V1_VSwitchPortStateDelta()
        wire.version = PortStateRecord.formatVersion
        wire.portID = port.rawValue
        wire.fromGeneration = fromGeneration
        wire.toGeneration = toGeneration
        wire.fullResync = fullResync
        wire.counters = Wire.counters(counters)
        wire.learned = learned.map(Wire.learned)
        wire.upserts = upserts.map(Wire.connection)
        wire.removals = removals.map(Wire.key)
        wire.final = isFinal
        wire.mobilitySequence = mobilitySequence
        // Proto3 without required fields or `Any`: encoding cannot throw, so `[]` is never returned.
        return (try? wire.serializedBytes()) ?? []
    }

    /// Decodes a delta.
    public init(serializedBytes bytes: [UInt8]) throws(WireDecodingError) {
        let name = "port state delta"
        let wire: Hostmesh_V1_VSwitchPortStateDelta
        do {
            wire = try Hostmesh_V1_VSwitchPortStateDelta(serializedBytes: bytes)
        } catch {
            throw .malformed(message: name, reason: "\(error)")
        }
        guard wire.version == PortStateRecord.formatVersion else { throw .unsupportedVersion(message: name, version: wire.version) }
        guard !wire.portID.isEmpty else { throw .invalidField("port_id", "empty") }
        var learned: [LearnedAddress] = []
        for address in wire.learned { learned.append(try Wire.learned(address)) }
        var upserts: [TrackedConnection] = []
        for connection in wire.upserts { upserts.append(try Wire.connection(connection)) }
        var removals: [ConnectionKey] = []
        for connection in wire.removals { removals.append(try Wire.key(connection)) }
        self.init(port: PortID(wire.portID), fromGeneration: wire.fromGeneration, toGeneration: wire.toGeneration,
                  fullResync: wire.fullResync, counters: Wire.counters(wire.counters), learned: learned, upserts: upserts,
                  removals: removals, isFinal: wire.final, mobilitySequence: wire.mobilitySequence)
    }
}

/// Encodes and decodes the overlay's control datagrams (`VSwitchControl`).
public enum OverlayControlCodec {
    /// Control format version.
    public static let formatVersion: UInt32 = 1

    /// The plaintext of a control datagram carrying `locations`.
    public static func encode(_ locations: [MACLocation]) -> [UInt8] {
        var wire = Hostmesh_V1_VSwitchControl()
        wire.version = formatVersion
        wire.locations = locations.map(Wire.location)
        // Proto3 without required fields or `Any`: encoding cannot throw, so `[]` is never returned.
        return (try? wire.serializedBytes()) ?? []
    }

    /// Decodes a control datagram's plaintext.
    public static func decode(_ bytes: [UInt8]) throws(WireDecodingError) -> [MACLocation] {
        let name = "overlay control datagram"
        let wire: Hostmesh_V1_VSwitchControl
        do {
            wire = try Hostmesh_V1_VSwitchControl(serializedBytes: bytes)
        } catch {
            throw .malformed(message: name, reason: "\(error)")
        }
        guard wire.version == formatVersion else { throw .unsupportedVersion(message: name, version: wire.version) }
        var locations: [MACLocation] = []
        for location in wire.locations { locations.append(try Wire.location(location)) }
        return locations
    }

    /// The protobuf encoding of location updates, for the agent's gossip (same message).
    public static func encodeForGossip(_ locations: [MACLocation]) -> [UInt8] { encode(locations) }
}

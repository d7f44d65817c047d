import Foundation
import MeshWire

/// Converts the core's gossip messages to and from their protobuf form (gossip.proto,
/// Protocol.md §4.2). Protobuf stays at this edge; the core only sees Swift values.
///
/// The encoded datagram is the PLAINTEXT of a UDP datagram: the shell MUST encrypt and
/// authenticate it with the gossip keyring before sending, and decrypt it before `decode`.
/// Decoding never traps: any input either decodes to a valid value or throws
/// `GossipCodecError`.
public enum GossipCodec {
    /// Format version written in every datagram and push-pull state.
    public static let formatVersion: UInt32 = 1
    /// Largest datagram `decodeDatagram` accepts (a UDP payload can never be larger).
    public static let maxDatagramBytes = 65_507
    /// Largest push-pull state `decodePushPullState` accepts (about 16,000 members).
    public static let maxPushPullBytes = 16 << 20
    /// Largest encoded host certificate a push-pull state may carry.
    public static let maxCertificateBytes = 4096
    /// Length of an Ed25519 signature, the only length a claim signature may have.
    public static let signatureBytes = 64

    // MARK: Datagrams

    /// The protobuf encoding of `datagram`.
    public static func encode(_ datagram: GossipDatagram) -> [UInt8] {
        serialize(wire(datagram))
    }

    /// Decodes a datagram's plaintext.
    public static func decodeDatagram(_ bytes: [UInt8]) throws(GossipCodecError) -> GossipDatagram {
        let name = "gossip datagram"
        guard bytes.count <= maxDatagramBytes else {
            throw .tooLarge(message: name, size: bytes.count, limit: maxDatagramBytes)
        }
        let message: Hostmesh_V1_GossipDatagram
        do {
            message = try Hostmesh_V1_GossipDatagram(serializedBytes: bytes)
        } catch {
            throw .malformed(message: name, detail: String(describing: error))
        }
        return try datagram(message)
    }

    /// The encoded size of `update` as one entry of `GossipDatagram.updates` (tag and length
    /// prefix included). The core uses it to pack datagrams within the size budget.
    public static func piggybackCost(of update: MemberUpdate) -> Int {
        let size = serialize(wire(update)).count
        return 1 + varintSize(UInt64(size)) + size
    }

    /// Reads the domain and version of an encoded `RevocationList` (structure only: the
    /// signature is the shell's to verify).
    public static func decodeRevocationNotice(_ list: [UInt8]) throws(GossipCodecError) -> RevocationNotice {
        try revocationNotice(list, in: "revocation list")
    }

    /// Reads the (domain, peer domain) and version of an encoded `FederationGrant` (structure
    /// only: the signature is the shell's to verify).
    public static func decodeFederationGrantNotice(_ grant: [UInt8]) throws(GossipCodecError) -> FederationGrantNotice {
        try federationGrantNotice(grant, in: "federation grant")
    }

    // MARK: Push-pull

    /// The protobuf encoding of a push-pull state (sent over the secure channel).
    public static func encode(_ state: PushPullState) -> [UInt8] {
        var message = Hostmesh_V1_GossipPushPullState()
        message.version = formatVersion
        message.sender = state.sender.hostID
        message.join = state.isJoin
        message.members = state.members.map(wire)
        message.revocations = state.revocations.map { Data($0.list) }
        message.federationGrants = state.federationGrants.map { Data($0.grant) }
        message.certificates = state.certificates.map { Data($0) }
        return serialize(message)
    }

    /// Decodes a push-pull state received over the secure channel.
    public static func decodePushPullState(_ bytes: [UInt8]) throws(GossipCodecError) -> PushPullState {
        let name = "push-pull state"
        guard bytes.count <= maxPushPullBytes else {
            throw .tooLarge(message: name, size: bytes.count, limit: maxPushPullBytes)
        }
        let message: Hostmesh_V1_GossipPushPullState
        do {
            message = try Hostmesh_V1_GossipPushPullState(serializedBytes: bytes)
        } catch {
            throw .malformed(message: name, detail: String(describing: error))
        }
        guard message.version == formatVersion else {
            throw .unsupportedVersion(message: name, version: message.version)
        }
        var members: [MemberRecord] = []
        members.reserveCapacity(message.members.count)
        for record in message.members {
            members.append(try memberRecord(record))
        }
        var revocations: [RevocationNotice] = []
        for list in message.revocations {
            revocations.append(try revocationNotice([UInt8](list), in: name))
        }
        var grants: [FederationGrantNotice] = []
        for grant in message.federationGrants {
            grants.append(try federationGrantNotice([UInt8](grant), in: name))
        }
        guard message.certificates.allSatisfy({ $0.count <= maxCertificateBytes }) else {
            throw .invalidField(message: name, field: "certificates", reason: "a certificate over \(maxCertificateBytes) bytes")
        }
        return PushPullState(
            sender: try memberID(message.sender, in: name, field: "sender"), isJoin: message.join, members: members,
            revocations: revocations, federationGrants: grants, certificates: message.certificates.map { [UInt8]($0) })
    }

    // MARK: Swift -> protobuf

    static func wire(_ datagram: GossipDatagram) -> Hostmesh_V1_GossipDatagram {
        var message = Hostmesh_V1_GossipDatagram()
        message.version = formatVersion
        message.sender = datagram.sender.hostID
        switch datagram.primary {
        case nil:
            break
        case .ping(let sequence, let target):
            var ping = Hostmesh_V1_GossipPing()
            ping.sequence = sequence
            ping.target = target.hostID
            message.primary = .ping(ping)
        case .pingRequest(let request):
            var wireRequest = Hostmesh_V1_GossipPingRequest()
            wireRequest.sequence = request.sequence
            wireRequest.target = request.target.hostID
            wireRequest.targetAddress = wire(request.targetAddress)
            wireRequest.wantNack = request.wantsNack
            message.primary = .pingRequest(wireRequest)
        case .ack(let sequence):
            var ack = Hostmesh_V1_GossipAck()
            ack.sequence = sequence
            message.primary = .ack(ack)
        case .nack(let sequence):
            var nack = Hostmesh_V1_GossipNack()
            nack.sequence = sequence
            message.primary = .nack(nack)
        }
        message.updates = datagram.updates.map(wire)
        return message
    }

    static func wire(_ update: MemberUpdate) -> Hostmesh_V1_GossipUpdate {
        var message = Hostmesh_V1_GossipUpdate()
        switch update {
        case .alive(let member, let incarnation, let address, let metadata, let signature):
            var alive = Hostmesh_V1_GossipAlive()
            alive.member = member.hostID
            alive.incarnation = incarnation
            alive.address = wire(address)
            if let metadata { alive.metadata = wire(metadata) }
            alive.signature = Data(signature)
            message.update = .alive(alive)
        case .suspect(let member, let incarnation, let from, let signature):
            var suspect = Hostmesh_V1_GossipSuspect()
            suspect.member = member.hostID
            suspect.incarnation = incarnation
            suspect.from = from.hostID
            suspect.signature = Data(signature)
            message.update = .suspect(suspect)
        case .dead(let member, let incarnation, let from, let signature):
            var dead = Hostmesh_V1_GossipDead()
            dead.member = member.hostID
            dead.incarnation = incarnation
            dead.from = from.hostID
            dead.signature = Data(signature)
            message.update = .dead(dead)
        case .left(let member, let incarnation, let signature):
            var leave = Hostmesh_V1_GossipLeave()
            leave.member = member.hostID
            leave.incarnation = incarnation
            leave.signature = Data(signature)
            message.update = .leave(leave)
        case .metadata(let member, let metadata):
            var update = Hostmesh_V1_GossipMetadataUpdate()
            update.member = member.hostID
            update.metadata = wire(metadata)
            message.update = .metadata(update)
        case .revocation(let notice):
            var revocation = Hostmesh_V1_GossipRevocation()
            revocation.list = Data(notice.list)
            message.update = .revocation(revocation)
        case .federationGrant(let notice):
            var update = Hostmesh_V1_GossipFederationGrant()
            update.grant = Data(notice.grant)
            message.update = .federationGrant(update)
        }
        return message
    }

    static func wire(_ metadata: MemberMetadata) -> Hostmesh_V1_GossipMemberMetadata {
        var message = Hostmesh_V1_GossipMemberMetadata()
        message.version = metadata.version
        message.domain = metadata.domain
        message.cores = metadata.cores
        message.memoryTotalBytes = metadata.memoryTotalBytes
        message.memoryFreeBytes = metadata.memoryFreeBytes
        message.runningVms = metadata.runningVMs
        message.cpuLoadMilli = metadata.cpuLoadMilli
        message.migrationsInFlight = metadata.migrationsInFlight
        switch metadata.health {
        case .ok: message.health = .ok
        case .degraded: message.health = .degraded
        case .unhealthy: message.health = .unhealthy
        }
        message.maintenance = metadata.maintenance
        if let address = metadata.channelAddress { message.channelAddress = wire(address) }
        if let address = metadata.controlAddress { message.controlAddress = wire(address) }
        if !metadata.keyFingerprint.isEmpty { message.keyFingerprint = Data(metadata.keyFingerprint) }
        if !metadata.instanceID.isEmpty { message.instanceID = Data(metadata.instanceID) }
        message.healthReasons = metadata.healthReasons
        message.gossipKeyIds = metadata.gossipKeyIDs
        message.gossipPrimaryKeyID = metadata.gossipPrimaryKeyID
        message.gossipKeyringVersion = metadata.gossipKeyringVersion
        message.signature = Data(metadata.signature)
        return message
    }

    /// The canonical encoding of `metadata` (fields in number order, defaults omitted), which
    /// `MembershipClaim.metadata` signs with the `signature` field left out.
    public static func canonicalBytes(of metadata: MemberMetadata) -> [UInt8] {
        var message = wire(metadata)
        message.signature = Data()
        return serialize(message)
    }

    static func wire(_ record: MemberRecord) -> Hostmesh_V1_GossipMemberRecord {
        var message = Hostmesh_V1_GossipMemberRecord()
        message.member = record.id.hostID
        message.address = wire(record.address)
        switch record.status {
        case .alive: message.status = .alive
        case .suspect: message.status = .suspect
        case .dead: message.status = .dead
        case .left: message.status = .left
        }
        message.incarnation = record.incarnation
        if let metadata = record.metadata { message.metadata = wire(metadata) }
        message.signature = Data(record.signature)
        return message
    }

    static func wire(_ address: PeerAddress) -> Hostmesh_V1_GossipAddress {
        var message = Hostmesh_V1_GossipAddress()
        message.host = address.host
        message.port = UInt32(address.port)
        return message
    }

    private static func serialize(_ message: some SwiftProtobuf.Message) -> [UInt8] {
        do {
            return try message.serializedBytes()
        } catch {
            // proto3 messages without `Any` fields have no failing encode path; reaching this
            // means the schema changed under us, a programmer error.
            preconditionFailure("encoding \(type(of: message)) failed: \(error)")
        }
    }

    static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var rest = value >> 7
        while rest != 0 {
            size += 1
            rest >>= 7
        }
        return size
    }
}

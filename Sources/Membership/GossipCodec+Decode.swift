import Foundation
import MeshWire

// Protobuf -> Swift, validating every field the core relies on.
extension GossipCodec {
    static func datagram(_ message: Hostmesh_V1_GossipDatagram) throws(GossipCodecError) -> GossipDatagram {
        let name = "gossip datagram"
        guard message.version == formatVersion else {
            throw .unsupportedVersion(message: name, version: message.version)
        }
        let sender = try memberID(message.sender, in: name, field: "sender")
        let primary: GossipPrimaryMessage?
        switch message.primary {
        case nil:
            primary = nil
        case .ping(let ping):
            // An empty target means "whoever listens here" (used by seeds that know no id).
            primary = .ping(sequence: ping.sequence, target: MemberID(ping.target))
        case .pingRequest(let request):
            guard request.hasTargetAddress else {
                throw .missingField(message: "ping request", field: "target_address")
            }
            primary = .pingRequest(
                PingRequest(
                    sequence: request.sequence,
                    target: try memberID(request.target, in: "ping request", field: "target"),
                    targetAddress: try address(request.targetAddress, in: "ping request", field: "target_address"),
                    wantsNack: request.wantNack))
        case .ack(let ack):
            primary = .ack(sequence: ack.sequence)
        case .nack(let nack):
            primary = .nack(sequence: nack.sequence)
        }
        var updates: [MemberUpdate] = []
        updates.reserveCapacity(message.updates.count)
        for update in message.updates {
            updates.append(try memberUpdate(update))
        }
        return GossipDatagram(sender: sender, primary: primary, updates: updates)
    }

    static func memberUpdate(_ message: Hostmesh_V1_GossipUpdate) throws(GossipCodecError) -> MemberUpdate {
        switch message.update {
        case nil:
            throw .missingField(message: "gossip update", field: "update")
        case .alive(let alive):
            guard alive.hasAddress else { throw .missingField(message: "alive update", field: "address") }
            return .alive(
                member: try memberID(alive.member, in: "alive update", field: "member"),
                incarnation: alive.incarnation,
                address: try address(alive.address, in: "alive update", field: "address"),
                metadata: alive.hasMetadata ? try metadata(alive.metadata, in: "alive update") : nil,
                signature: try signature(alive.signature, in: "alive update"))
        case .suspect(let suspect):
            return .suspect(
                member: try memberID(suspect.member, in: "suspect update", field: "member"),
                incarnation: suspect.incarnation,
                from: try memberID(suspect.from, in: "suspect update", field: "from"),
                signature: try signature(suspect.signature, in: "suspect update"))
        case .dead(let dead):
            return .dead(
                member: try memberID(dead.member, in: "dead update", field: "member"),
                incarnation: dead.incarnation,
                from: try memberID(dead.from, in: "dead update", field: "from"),
                signature: try signature(dead.signature, in: "dead update"))
        case .leave(let leave):
            return .left(
                member: try memberID(leave.member, in: "leave update", field: "member"),
                incarnation: leave.incarnation,
                signature: try signature(leave.signature, in: "leave update"))
        case .metadata(let update):
            guard update.hasMetadata else { throw .missingField(message: "metadata update", field: "metadata") }
            return .metadata(
                member: try memberID(update.member, in: "metadata update", field: "member"),
                metadata: try metadata(update.metadata, in: "metadata update"))
        case .revocation(let revocation):
            return .revocation(try revocationNotice([UInt8](revocation.list), in: "revocation update"))
        case .federationGrant(let update):
            return .federationGrant(try federationGrantNotice([UInt8](update.grant), in: "federation grant update"))
        }
    }

    /// Reads the (domain, peer domain) and version of an encoded `FederationGrant` (structure
    /// only: the signature is the shell's to verify, Protocol.md §4.15).
    static func federationGrantNotice(_ grant: [UInt8], in name: String) throws(GossipCodecError) -> FederationGrantNotice {
        let body: Hostmesh_V1_FederationGrantBody
        do {
            let wire = try Hostmesh_V1_FederationGrant(serializedBytes: grant)
            body = try Hostmesh_V1_FederationGrantBody(serializedBytes: wire.body)
        } catch {
            throw .malformed(message: name, detail: "federation grant does not decode: \(error)")
        }
        guard !body.domain.isEmpty else { throw .missingField(message: name, field: "domain") }
        guard !body.peerDomain.isEmpty else { throw .missingField(message: name, field: "peer_domain") }
        guard body.version >= 1 else {
            throw .invalidField(message: name, field: "version", reason: "0 (versions start at 1)")
        }
        return FederationGrantNotice(key: body.domain + "/" + body.peerDomain, version: body.version, grant: grant)
    }

    /// Reads the domain and version of an encoded `RevocationList` (structure only: the
    /// signature is the shell's to verify, Protocol.md §4.14).
    static func revocationNotice(_ list: [UInt8], in name: String) throws(GossipCodecError) -> RevocationNotice {
        let body: Hostmesh_V1_RevocationListBody
        do {
            let wire = try Hostmesh_V1_RevocationList(serializedBytes: list)
            body = try Hostmesh_V1_RevocationListBody(serializedBytes: wire.body)
        } catch {
            throw .malformed(message: name, detail: "revocation list does not decode: \(error)")
        }
        guard !body.domain.isEmpty else { throw .missingField(message: name, field: "domain") }
        guard body.version >= 1 else {
            throw .invalidField(message: name, field: "version", reason: "0 (versions start at 1)")
        }
        return RevocationNotice(domain: body.domain, version: body.version, list: list)
    }

    static func memberRecord(_ message: Hostmesh_V1_GossipMemberRecord) throws(GossipCodecError) -> MemberRecord {
        let name = "member record"
        guard message.hasAddress else { throw .missingField(message: name, field: "address") }
        let status: MemberStatus
        switch message.status {
        case .alive: status = .alive
        case .suspect: status = .suspect
        case .dead: status = .dead
        case .left: status = .left
        case .unspecified, .UNRECOGNIZED:
            throw .invalidField(
                message: name, field: "status", reason: "value \(message.status.rawValue) is not a member status")
        }
        return MemberRecord(
            id: try memberID(message.member, in: name, field: "member"),
            address: try address(message.address, in: name, field: "address"),
            status: status,
            incarnation: message.incarnation,
            metadata: message.hasMetadata ? try metadata(message.metadata, in: name) : nil,
            signature: try signature(message.signature, in: name))
    }

    /// A claim signature: absent (empty) or exactly 64 bytes (Ed25519).
    static func signature(_ bytes: Data, in name: String, field: String = "signature") throws(GossipCodecError) -> [UInt8] {
        guard bytes.isEmpty || bytes.count == signatureBytes else {
            throw .invalidField(message: name, field: field, reason: "\(bytes.count) bytes, 0 or \(signatureBytes) expected")
        }
        return [UInt8](bytes)
    }

    static func metadata(
        _ message: Hostmesh_V1_GossipMemberMetadata, in name: String
    ) throws(GossipCodecError) -> MemberMetadata {
        let health: MemberMetadata.Health
        switch message.health {
        case .ok: health = .ok
        case .degraded: health = .degraded
        // An unset or future health value is treated as the most cautious one.
        case .unhealthy, .unspecified, .UNRECOGNIZED: health = .unhealthy
        }
        guard message.keyFingerprint.count <= 64 else {
            throw .invalidField(
                message: name, field: "metadata.key_fingerprint",
                reason: "\(message.keyFingerprint.count) bytes, at most 64 expected")
        }
        guard message.instanceID.count <= 32 else {
            throw .invalidField(
                message: name, field: "metadata.instance_id",
                reason: "\(message.instanceID.count) bytes, at most 32 expected")
        }
        guard message.healthReasons.count <= MemberMetadata.maxHealthReasons,
              message.healthReasons.allSatisfy({ $0.utf8.count <= MemberMetadata.maxHealthReasonBytes }) else {
            throw .invalidField(
                message: name, field: "metadata.health_reasons",
                reason: "\(message.healthReasons.count) reasons, at most \(MemberMetadata.maxHealthReasons) of at most \(MemberMetadata.maxHealthReasonBytes) bytes expected")
        }
        guard message.gossipKeyIds.count <= MemberMetadata.maxGossipKeys else {
            throw .invalidField(
                message: name, field: "metadata.gossip_key_ids",
                reason: "\(message.gossipKeyIds.count) key ids, at most \(MemberMetadata.maxGossipKeys) expected")
        }
        var decoded = MemberMetadata(
            version: message.version,
            domain: message.domain,
            cores: message.cores,
            memoryTotalBytes: message.memoryTotalBytes,
            memoryFreeBytes: message.memoryFreeBytes,
            runningVMs: message.runningVms,
            cpuLoadMilli: message.cpuLoadMilli,
            migrationsInFlight: message.migrationsInFlight,
            health: health,
            maintenance: message.maintenance,
            channelAddress: message.hasChannelAddress
                ? try address(message.channelAddress, in: name, field: "metadata.channel_address") : nil,
            controlAddress: message.hasControlAddress
                ? try address(message.controlAddress, in: name, field: "metadata.control_address") : nil,
            keyFingerprint: [UInt8](message.keyFingerprint),
            instanceID: [UInt8](message.instanceID),
            healthReasons: message.healthReasons)
        decoded.gossipKeyIDs = message.gossipKeyIds
        decoded.gossipPrimaryKeyID = message.gossipPrimaryKeyID
        decoded.gossipKeyringVersion = message.gossipKeyringVersion
        decoded.signature = try signature(message.signature, in: name, field: "metadata.signature")
        return decoded
    }

    static func memberID(_ raw: String, in name: String, field: String) throws(GossipCodecError) -> MemberID {
        guard !raw.isEmpty else { throw .missingField(message: name, field: field) }
        guard raw.utf8.count <= 255 else {
            throw .invalidField(message: name, field: field, reason: "\(raw.utf8.count) bytes, at most 255 allowed")
        }
        return MemberID(raw)
    }

    static func address(
        _ message: Hostmesh_V1_GossipAddress, in name: String, field: String
    ) throws(GossipCodecError) -> PeerAddress {
        guard !message.host.isEmpty else { throw .missingField(message: name, field: "\(field).host") }
        guard message.port >= 1, message.port <= 65_535 else {
            throw .invalidField(message: name, field: "\(field).port", reason: "\(message.port) is not in 1...65535")
        }
        return PeerAddress(host: message.host, port: UInt16(message.port))
    }
}

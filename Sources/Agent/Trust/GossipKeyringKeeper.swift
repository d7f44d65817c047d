import ControlAPI
import Foundation
import GossipTransport
import Logging
import MeshCrypto
import MeshIdentity
import MeshWire
import Membership
import SecureChannel

/// Keeps the mesh's gossip keyring in step across the domain (Protocol.md §4.17): a signed,
/// versioned record (domain key or an issuer) names the keys in force and the primary; the
/// secrets travel beside it on the secure channel. A newer record that verifies is adopted
/// (key file, gossip service, metadata announcement), stored, and sent on to every agent; an
/// older one changes nothing; a member whose metadata announces an older version is sent the
/// newest (catch-up), and a host that joins takes the member's keyring only when it is newer.
actor GossipKeyringKeeper {
    private let store: GossipKeyringStore
    private let trust: TrustStore
    private let domain: String
    private let hostID: String
    private let membership: AgentMembership
    private let logger: Logger
    private var held: VersionedGossipKeyring
    private var record: GossipKeyringRecord?
    /// Sends an envelope to every known agent; set once the peers exist.
    private var broadcast: (@Sendable (Hostmesh_V1_AgentEnvelope) async -> Void)?
    /// Sends an envelope to one agent (host id, channel address).
    private var send: (@Sendable (String, HostPort, Hostmesh_V1_AgentEnvelope) async -> Void)?
    /// When each lagging member was last sent the newest record (catch-up is rate limited).
    private var lastCatchUp: [String: ContinuousClock.Instant] = [:]
    /// Records refused so far.
    private(set) var refused = 0

    /// A member lagging behind is sent the record again at most this often.
    static let catchUpInterval: Duration = .seconds(5)

    init(store: GossipKeyringStore, trust: TrustStore, domain: String, hostID: String, membership: AgentMembership,
         initial: GossipKeyring, logger: Logger) {
        self.store = store
        self.trust = trust
        self.domain = domain
        self.hostID = hostID
        self.membership = membership
        self.logger = logger
        held = VersionedGossipKeyring(unmanaged: initial)
    }

    /// At start, before any listener: the newest stored record that still verifies and whose
    /// keys the key file holds becomes the held version (announced once the gossip runs).
    func loadStored() throws {
        for bytes in try store.newestFirst() {
            do {
                let record = try verified(bytes)
                var next = held
                guard case .adopted = try next.adopt(Self.manifest(of: record), secrets: []) else { return }
                guard next.keyring.primaryID == held.keyring.primaryID, next.keyring.keyIDs == held.keyring.keyIDs else {
                    // The key file moved on (written, then the agent stopped before the record was
                    // stored): keep the file's keys unmanaged; a peer's newer record brings a version.
                    logger.warning("the stored gossip keyring record does not match gossip.keys; holding the keys of the file until a peer sends a newer record",
                                   metadata: ["mesh.version": "\(record.version)"])
                    return
                }
                held = next
                self.record = record
                logger.info("gossip keyring record loaded", metadata: ["mesh.version": "\(record.version)", "mesh.gossip.keys": "\(held.keyring)"])
                return
            } catch {
                logger.error("a stored gossip keyring record no longer applies; trying an older one", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Connects the keeper to the peers.
    func wire(broadcast: @escaping @Sendable (Hostmesh_V1_AgentEnvelope) async -> Void,
              send: @escaping @Sendable (String, HostPort, Hostmesh_V1_AgentEnvelope) async -> Void) {
        self.broadcast = broadcast
        self.send = send
    }

    /// Once the gossip runs: the signed metadata announces the held keys and version.
    func announce() async {
        do { try await membership.useKeyring(held.keyring, version: held.version) } catch {
            logger.error("cannot announce this host's gossip keys", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Carrying

    /// The envelope carrying the held record and its secrets, or nil before any record.
    func update() -> Hostmesh_V1_AgentEnvelope? {
        guard let record else { return nil }
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.gossipKeyring.record = Data(record.serialized)
        envelope.gossipKeyring.keys = held.secretsInManifestOrder.map { Data($0.revealForStorage()) }
        return envelope
    }

    /// What a join hands over: the keyring and its record, read together.
    func heldForJoin() -> (keyring: GossipKeyring, record: [UInt8]?)? {
        (held.keyring, record?.serialized)
    }

    /// A record a peer of this domain sent (after a hello, on a change, or to catch this host up).
    func receive(_ update: Hostmesh_V1_TrustGossipKeyringUpdate, from peer: String) async {
        do {
            if try await apply([UInt8](update.record), secrets: update.keys.map { [UInt8]($0) }, source: peer) {
                await forward()
            }
        } catch {
            refused += 1
            logger.warning("gossip keyring from a peer refused", metadata: ["mesh.peer": "\(peer)", "mesh.reason": "\(error)"])
        }
    }

    /// The operator publishes a record (and the secrets of keys it installs): verified, adopted,
    /// stored, sent on. Returns what changed.
    func publish(_ bytes: [UInt8], secrets: [[UInt8]]) async throws(ControlError) -> String {
        do {
            guard try await apply(bytes, secrets: secrets, source: "the operator") else {
                return "already held: this agent holds keyring version \(held.version) (nothing changed)"
            }
        } catch {
            refused += 1
            logger.warning("gossip keyring refused", metadata: ["mesh.reason": "\(error)"])
            throw .badRequest("\(error)")
        }
        await forward()
        return "gossip keyring version \(held.version) in force here (\(held.keyring)), sent to every known agent"
    }

    /// What a member handed at join: taken when its record is newer than the held one, or when
    /// neither side has a record (the mesh's unmanaged keyring, as before records existed).
    func offeredAtJoin(_ keyring: GossipKeyring, record bytes: [UInt8], by seed: HostPort) async {
        if bytes.isEmpty {
            guard held.version == 0 else {
                logger.info("the member joined through holds no keyring record; keeping this host's newer one (it is sent to the member)",
                            metadata: ["mesh.seed": "\(seed)", "mesh.version": "\(held.version)"])
                return
            }
            held = VersionedGossipKeyring(unmanaged: keyring)
            record = nil
            do { try await membership.useKeyring(keyring, version: 0) } catch {
                logger.error("cannot use the keyring handed at join", metadata: ["error": "\(error)"])
            }
            return
        }
        do {
            _ = try await apply(bytes, secrets: keyring.keys.map { $0.revealForStorage() }, source: "the member joined through (\(seed))")
        } catch {
            refused += 1
            logger.error("the keyring record handed at join is refused; keeping this host's keyring", metadata: ["mesh.seed": "\(seed)", "mesh.reason": "\(error)"])
        }
    }

    /// Sends the held record to every reachable member whose metadata announces an older
    /// version (a member that was down during a change, or partitioned), at most once per
    /// `catchUpInterval` each.
    func catchUp() async {
        guard let update = update(), let send else { return }
        let now = ContinuousClock.now
        for snapshot in await membership.service.members() where !snapshot.isLocal {
            let member = snapshot.member
            guard member.status == .alive || member.status == .suspect, let metadata = member.metadata,
                  metadata.domain == domain, metadata.gossipKeyringVersion < held.version,
                  let address = metadata.channelAddress else { continue }
            if let last = lastCatchUp[member.id.hostID], now - last < Self.catchUpInterval { continue }
            lastCatchUp[member.id.hostID] = now
            logger.info("sending the gossip keyring to a member that holds an older version", metadata: [
                "mesh.peer": "\(member.id.hostID)", "mesh.peer_version": "\(metadata.gossipKeyringVersion)", "mesh.version": "\(held.version)"])
            await send(member.id.hostID, HostPort(host: address.host, port: Int(address.port)), update)
        }
    }

    // MARK: - Showing

    /// The keyring and every member's announcement, for `hostmesh keys gossip list`.
    func info() async -> ControlTypes.GossipKeyringInfo {
        let members = await membership.service.members().map { snapshot in
            let metadata = snapshot.member.metadata
            return ControlTypes.GossipKeyringMember(
                host: snapshot.member.id.hostID, status: "\(snapshot.member.status)",
                keys: (metadata?.gossipKeyIDs ?? []).map { GossipKeyID(rawValue: $0).description },
                primary: metadata.flatMap { $0.gossipPrimaryKeyID == 0 ? nil : GossipKeyID(rawValue: $0.gossipPrimaryKeyID).description },
                version: metadata?.gossipKeyringVersion ?? 0)
        }.sorted { $0.host < $1.host }
        return ControlTypes.GossipKeyringInfo(
            domain: domain, version: held.version, record: record.map { Data($0.serialized).base64EncodedString() },
            primary: held.manifest.primary.description,
            keys: held.manifest.entries.map { ControlTypes.GossipKeyInfo(id: $0.id.description, commitment: Hex.encode($0.commitment)) },
            members: members)
    }

    // MARK: - Applying

    /// Decodes and verifies a record for this domain (Protocol.md §4.17 steps 1-3).
    private func verified(_ bytes: [UInt8]) throws(IdentityError) -> GossipKeyringRecord {
        let record = try GossipKeyringRecord(serialized: bytes)
        guard record.domain == domain else {
            throw .gossipKeyringRefused("it is for domain \"\(record.domain)\"; this host's mesh is \"\(domain)\"")
        }
        try trust.verify(record, now: Int64(Date().timeIntervalSince1970))
        return record
    }

    /// Adopts the record if it verifies and is newer; true when it changed the keyring.
    private func apply(_ bytes: [UInt8], secrets: [[UInt8]], source: String) async throws -> Bool {
        let record = try verified(bytes)
        let keys = try secrets.map { bytes throws(GossipKeyringError) in try GossipKey(bytes: bytes) }
        let before = (held, self.record)
        var next = held
        guard case .adopted(let previous) = try next.adopt(Self.manifest(of: record), secrets: keys) else { return false }
        // Claimed before the first await: a record arriving meanwhile compares with this one.
        held = next
        self.record = record
        // The key file and the gossip service; AgentMembership ignores a version older than the
        // one it installed last, so two adoptions finishing out of order leave the newest.
        do { try await membership.useKeyring(next.keyring, version: record.version) } catch {
            if held.version == record.version { (held, self.record) = before } // nothing newer came meanwhile
            throw error
        }
        do { try store.save(record) } catch {
            // In force already and in the key file; lost at a restart until a peer sends it again.
            logger.error("cannot store the gossip keyring record", metadata: ["mesh.version": "\(record.version)", "error": "\(error)"])
        }
        logger.notice("gossip keyring changed", metadata: [
            "mesh.version": "\(record.version)", "mesh.previous_version": "\(previous)", "mesh.gossip.keys": "\(next.keyring)",
            "mesh.signer": "\(record.issuer.map { "issuer \($0.hostID)" } ?? "domain key \(record.signerKey.fingerprint)")",
            "mesh.source": "\(source)"])
        return true
    }

    private func forward() async {
        guard let broadcast, let update = update() else { return }
        await broadcast(update)
    }

    /// The manifest a verified record states.
    static func manifest(of record: GossipKeyringRecord) -> GossipKeyringManifest {
        GossipKeyringManifest(version: record.version,
                              entries: record.entries.map { .init(id: GossipKeyID(rawValue: $0.id), commitment: $0.commitment) },
                              primary: GossipKeyID(rawValue: record.primaryKeyID))
    }
}

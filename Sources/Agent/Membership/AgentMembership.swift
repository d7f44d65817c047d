import Hypervisor
import ControlAPI
import Foundation
import GossipTransport
import Logging
import MeshTime
import MeshIdentity
import MeshCrypto
import MeshWire
import Membership
import NIOCore
import SecureChannel
import ShellSupport

/// The agent's membership: the gossip service, its keyring file, push-pull and join over secure
/// channels, the host's capacity as member metadata, and what other parts do when members come
/// and go (overlay keys, locations).
public actor AgentMembership {
    let service: MembershipService
    private let credentials: ChannelCredentials
    private let keysPath: String
    private let logger: Logger
    /// This host's metadata as it should be gossiped: every change is made here at once, with
    /// no await before it, and then published (`publish`).
    private var metadata: MemberMetadata
    /// The metadata the membership service took last (nil: none yet).
    private var published: MemberMetadata?
    /// When `refresh` last changed the capacity in `metadata` (drift waits for its interval).
    private var lastCapacityChange: ContinuousClock.Instant?
    /// Publications, one at a time, so updates reach the service in order and the last one
    /// carries every change. (Each change used to send a copy made before its await: a
    /// capacity refresh under way could gossip the maintenance flag back on after the host
    /// left maintenance, and peers saw it evacuating for good.)
    private var publications = TurnQueue()
    /// Keyring installations, one at a time: the version check, the key file and the
    /// service's keyring then always agree (two adoptions could otherwise install in one
    /// order and announce in the other).
    private var keyringInstallations = TurnQueue()
    /// The gossip keyring's keeper (Protocol.md §4.17): decides what a join hands over and
    /// what a joining host adopts; set once at start (`wire(keyring:)`).
    private var keyringKeeper: GossipKeyringKeeper?
    /// The record version of the keyring installed last (0: unmanaged).
    private var keyringVersion: UInt64 = 0
    /// The keyring read from `gossip.keys` at start (the keeper's version 0).
    let initialKeyring: GossipKeyring

    /// A refused push-pull or join (certificate, domain): do not retry that seed.
    struct Refused: PushPullRefusal, CustomStringConvertible {
        let reason: String
        var description: String { reason }
    }

    /// Creates the service with the keyring from `<state>/gossip.keys` (0600), making a fresh one
    /// when there is none (the first host of a mesh; a joining host replaces it with the mesh's).
    init(configuration: AgentConfiguration, credentials: ChannelCredentials, channel: HostPort, logger: Logger) throws {
        self.credentials = credentials
        self.logger = logger
        keysPath = configuration.stateDirectory + "/" + GossipKeyringFile.defaultFileName
        let keyring: GossipKeyring
        if FileManager.default.fileExists(atPath: keysPath) {
            let bytes = try SecureFile.readSecret(keysPath, what: "gossip keyring")
            do { keyring = try GossipKeyringFile.parse(bytes) } catch {
                throw AgentError.identity("\(keysPath) is not a valid gossip keyring: \(error)")
            }
        } else {
            keyring = try GossipKeyring(primary: GossipKey.generate())
            try SecureFile.write(GossipKeyringFile.encode(keyring), to: keysPath, mode: 0o600)
        }
        initialKeyring = keyring
        let listen = configuration.gossipListen
        let wildcard = listen.isWildcard
        let advertised = configuration.advertiseHost ?? (wildcard ? nil : listen.host)
        guard let advertised else {
            throw AgentError.badConfiguration(path: "advertise_host", reason: "gossip listens on \(listen): set advertise_host to the address other hosts reach this one at")
        }
        let channelHost = channel.isWildcard ? advertised : channel.host
        metadata = MemberMetadata(domain: credentials.certificate.domain,
                                  channelAddress: PeerAddress(host: channelHost, port: UInt16(channel.port)),
                                  keyFingerprint: Array(Blake2bFingerprint.of(credentials.identity.signingKey.publicKey.bytes)),
                                  instanceID: Sodium.randomBytes(8))
        metadata.gossipKeyIDs = keyring.keyIDs.map(\.rawValue)
        metadata.gossipPrimaryKeyID = keyring.primaryID.rawValue
        // No seeds here: joining first fetches the mesh's keyring over the secure channel
        // (`join(_:)`), which the agent does once the service runs.
        var config = MembershipServiceConfiguration(memberID: MemberID(credentials.identity.hostID), bindHost: listen.host,
                                                    bindPort: listen.port, advertisedHost: advertised, metadata: metadata)
        config.settings = configuration.membershipSettings
        config.joinRetry = JoinRetryPolicy(maxAttempts: 5, initialBackoff: .milliseconds(500), maxBackoff: .seconds(10))
        // A graceful shutdown waits for the leave: keep it short (peers that miss it see this
        // host dead instead of left, a few seconds later).
        config.leaveTimeout = .seconds(2)
        // Revocation lists are verified against this host's trust anchors before the core sees them.
        let trust = credentials.trust
        config.revocationVerifier = { bytes in
            do { _ = try RevocationKeeper.verified(bytes, trust: trust); return nil } catch { return "\(error)" }
        }
        // Federation grants too, and only this host's own domain's (Protocol.md §4.15).
        let domain = credentials.certificate.domain
        config.federationGrantVerifier = { bytes in
            do { _ = try FederationKeeper.verified(bytes, trust: trust, domain: domain, now: Int64(Date().timeIntervalSince1970)); return nil } catch {
                return "\(error)"
            }
        }
        // Signed membership (Protocol.md §4.16): claims signed with the host key (the current
        // one, after a rotation too), checked against certificates carried by push-pull.
        let signing = credentials
        config.signedClaims = SignedClaimsConfiguration(
            sign: { claim in signing.identity.signingKey.sign(claim) },
            ownCertificate: { signing.certificate.serialized },
            checkCertificate: { bytes in Self.checkMemberCertificate(bytes, trust: trust) })
        let pushPullCredentials = credentials
        let pushPullLogger = logger
        service = MembershipService(configuration: config, keyring: keyring, pushPull: { peer, request in
            // The channel must prove it is the member asked (an address may come from an
            // unverified claim, Protocol.md §4.16); a seed is whoever answers there.
            try await Self.exchange(peer.address, expecting: peer.member?.hostID, credentials: pushPullCredentials, logger: pushPullLogger) {
                $0.pushPull.state = Data(request)
            } answer: { body in
                guard case .pushPullReply(let reply) = body else { return nil }
                return [UInt8](reply.state)
            }
        }, eventLoop: AgentEventLoops.latency.next(), logger: logger)
    }

    /// A member certificate from a push-pull state: valid now under a trusted domain and not
    /// revoked; its identity key verifies that member's claims (Protocol.md §4.16).
    static func checkMemberCertificate(_ bytes: [UInt8], trust: TrustStore) -> CertificateCheck {
        do {
            let certificate = try HostCertificate(serialized: bytes)
            try trust.verify(certificate, now: Int64(Date().timeIntervalSince1970))
            if trust.revocations.entry(revoking: certificate) != nil {
                return .refused("the certificate of \(certificate.hostID) (serial \(certificate.serial)) is revoked")
            }
            return .valid(member: MemberID(certificate.hostID), key: [UInt8](certificate.body.identityKey), serial: certificate.serial)
        } catch {
            return .refused("\(error)")
        }
    }

    /// Opens a channel to `address`, sends one envelope, returns the decoded answer.
    static func exchange(_ address: PeerAddress, purpose: String = "sync", expecting peer: String? = nil,
                         credentials: ChannelCredentials, logger: Logger,
                         _ build: (inout Hostmesh_V1_AgentEnvelope) -> Void,
                         answer: (Hostmesh_V1_AgentEnvelope.OneOf_Body) -> [UInt8]?) async throws -> [UInt8] {
        var configuration = SecureChannelConfiguration(credentials: credentials, handshakeTimeout: .seconds(5))
        configuration.policy.purpose = purpose
        configuration.policy.requiredDomain = credentials.certificate.domain
        configuration.policy.expectedPeer = peer
        let connection: SecureConnection
        do {
            connection = try await SecureConnection.connect(host: address.host, port: Int(address.port), configuration: configuration, logger: logger)
        } catch let error as SecureChannelError where error.byPeer || [.unknownIssuer, .wrongDomain, .certificateExpired, .badCertificateSignature, .unknownDomain].contains(error.code) {
            throw Refused(reason: "\(error)")
        }
        var envelope = Hostmesh_V1_AgentEnvelope()
        build(&envelope)
        let reply: Hostmesh_V1_AgentEnvelope?
        do { reply = try await connection.request(envelope) } catch let error as SecureChannelError where error.byPeer && error.code != .shuttingDown {
            throw Refused(reason: "\(error)") // the peer refused and said why (Protocol.md §5.3)
        }
        guard let body = reply?.body, let bytes = answer(body) else {
            throw AgentError.protocolViolation("\(address) did not answer the \(purpose) request")
        }
        return bytes
    }

    // MARK: - Serving

    /// A push-pull a member opened on a "sync" channel.
    func handlePushPull(_ state: [UInt8], from peer: PeerIdentity) async throws -> Hostmesh_V1_AgentEnvelope {
        var reply = Hostmesh_V1_AgentEnvelope()
        reply.pushPullReply.state = Data(try await service.handlePushPull(state, authenticatedPeer: MemberID(peer.hostID)))
        return reply
    }

    /// A host asking to join: hand it the keyring if it belongs to this domain.
    func handleJoin(from peer: PeerIdentity) async throws -> Hostmesh_V1_AgentEnvelope {
        guard peer.domain == credentials.certificate.domain else {
            throw SecureChannelError(.wrongDomain, "\(peer.hostID) is in domain \(peer.domain); joining this mesh needs domain \(credentials.certificate.domain)")
        }
        var reply = Hostmesh_V1_AgentEnvelope()
        // The keyring and the signed record it came from, read together (the keeper holds both).
        if let keyringKeeper, let held = await keyringKeeper.heldForJoin() {
            reply.joinAccepted.keyring = String(decoding: GossipKeyringFile.encode(held.keyring), as: UTF8.self)
            if let record = held.record { reply.joinAccepted.keyringRecord = Data(record) }
        } else {
            reply.joinAccepted.keyring = String(decoding: GossipKeyringFile.encode(try await service.keyring()), as: UTF8.self)
        }
        if let address = await service.localAddress() { reply.joinAccepted.gossipAddress = "\(address.host):\(address.port)" }
        logger.info("handing the gossip keyring to a joining host", metadata: ["mesh.peer": "\(peer.hostID)"])
        return reply
    }

    // MARK: - Operations

    /// Joins the mesh through the member at `address` (its channel address): takes the mesh's
    /// keyring from it over the secure channel, then pushes and pulls state with it.
    func join(_ address: HostPort) async throws -> Int {
        let seed = PeerAddress(host: address.host, port: UInt16(address.port))
        let bytes = try await Self.exchange(seed, purpose: "join", credentials: credentials, logger: logger) {
            $0.joinRequest = Hostmesh_V1_JoinRequest()
        } answer: { body in
            guard case .joinAccepted(let accepted) = body else { return nil }
            return try? accepted.serializedBytes() // a decoded message always encodes again
        }
        let accepted: Hostmesh_V1_JoinAccepted
        let keyring: GossipKeyring
        do {
            accepted = try Hostmesh_V1_JoinAccepted(serializedBytes: bytes)
            keyring = try GossipKeyringFile.parse(Array(accepted.keyring.utf8))
        } catch {
            throw AgentError.protocolViolation("\(address) sent an invalid keyring: \(error)")
        }
        if let keyringKeeper {
            // Versioned (Protocol.md §4.17): the member's keyring replaces this host's only when
            // its signed record is newer (a host that comes back keeps a newer ring it holds).
            await keyringKeeper.offeredAtJoin(keyring, record: [UInt8](accepted.keyringRecord), by: address)
        } else {
            try installKeyring(keyring)
            try await service.replaceKeyring(keyring)
        }
        return try await service.join(seeds: [seed])
    }

    /// Connects the keyring keeper (at start, before any listener).
    func wire(keyring keeper: GossipKeyringKeeper) {
        keyringKeeper = keeper
    }

    /// Writes `keyring` to the key file (0600) and seals and opens with it from now on; the
    /// signed metadata announces its key ids, primary and record `version` (Protocol.md §4.17).
    func useKeyring(_ keyring: GossipKeyring, version: UInt64) async throws {
        try await keyringInstallations.enqueue { try await self.installInTurn(keyring, version: version) }.value
    }

    private func installInTurn(_ keyring: GossipKeyring, version: UInt64) async throws {
        // Two adoptions may reach this actor out of order: never go back to an older version.
        guard version >= keyringVersion else { return }
        keyringVersion = version
        try installKeyring(keyring)
        try await service.replaceKeyring(keyring)
        var next = metadata
        next.gossipKeyIDs = keyring.keyIDs.map(\.rawValue)
        next.gossipPrimaryKeyID = keyring.primaryID.rawValue
        next.gossipKeyringVersion = version
        guard next != metadata else { return }
        metadata = next
        await publish(failure: "cannot announce this host's gossip keys in its metadata; the next capacity refresh carries them")
    }

    /// Writes the key file (0600), replacing it.
    private func installKeyring(_ keyring: GossipKeyring) throws {
        try SecureFile.write(GossipKeyringFile.encode(keyring), to: keysPath, mode: 0o600, overwrite: true)
    }

    /// Joins through each configured member at start, retrying with backoff until one works.
    func joinAtStart(_ seeds: [HostPort]) async {
        guard !seeds.isEmpty else { return }
        var delay = Duration.milliseconds(500)
        while !Task.isCancelled {
            for seed in seeds {
                do {
                    let known = try await join(seed)
                    logger.info("joined the mesh", metadata: ["mesh.seed": "\(seed)", "mesh.members": "\(known)"])
                    return
                } catch let refused as Refused {
                    logger.error("join refused", metadata: ["mesh.seed": "\(seed)", "mesh.reason": "\(refused)"])
                } catch {
                    logger.warning("join failed, will retry", metadata: ["mesh.seed": "\(seed)", "error": "\(error)"])
                }
            }
            try? await Task.sleep(for: delay) // cancelled: the loop condition ends the retries
            delay = min(delay * 2, .seconds(30))
        }
    }

    /// Gossips the fingerprint of this host's new identity key (after a key rotation, §2.8).
    func keyRotated() async {
        // Claims signed with the old key are replaced by ones signed with the new (§4.16).
        do { try await service.hostKeyChanged() } catch {
            logger.error("cannot re-sign this host's membership claims with its new key", metadata: ["error": "\(error)"])
        }
        var next = metadata
        next.keyFingerprint = Array(Blake2bFingerprint.of(credentials.identity.signingKey.publicKey.bytes))
        guard next.keyFingerprint != metadata.keyFingerprint else { return }
        metadata = next
        await publish(failure: "cannot gossip the new key's fingerprint; the next capacity refresh carries it")
    }

    /// Refreshes this host's capacity in its metadata (gossiped if it changed).
    func refresh(runningVMs: Int, migrationsInFlight: Int) async {
        // Read before any state: nothing checked below spans this await.
        let members = await service.members().count { $0.member.status == .alive || $0.member.status == .suspect }
        let memory = HostMemory.reading()
        if memory == nil {
            logger.error("cannot read /proc/meminfo: this host advertises itself unhealthy (it admits no migration meanwhile)",
                         metadata: ["mesh.host": "\(credentials.identity.hostID)"])
        }
        let next = Self.capacity(after: metadata, memory: memory, load: HostMemory.load(), cores: ProcessInfo.processInfo.activeProcessorCount,
                                 runningVMs: runningVMs, migrationsInFlight: migrationsInFlight, health: health)
        // Free memory and load move all the time: their drift is gossiped only when worth it,
        // and at most once per drift interval; a real change goes at once.
        let now = ContinuousClock.now
        let driftDue = lastCapacityChange.map { now - $0 >= CapacityGossip.driftInterval(members: members) } ?? true
        let significant = CapacityGossip.isStructural(next, from: metadata) || (driftDue && CapacityGossip.hasDrifted(next, from: metadata))
        if significant || published == nil {
            metadata = next
            lastCapacityChange = now
        }
        guard significant || !isPublished(metadata) else { return }
        await publish(failure: "cannot update this host's gossiped capacity; the next refresh tries again")
    }

    /// Sends `metadata` as it is when its turn comes, after every publication begun before,
    /// and returns once the service took it (or failed: logged with `failure`, and the next
    /// refresh sends it again).
    private func publish(failure: String) async {
        // `sendMetadata` throws nothing: it logs its failure.
        _ = await publications.enqueue { await self.sendMetadata(failure: failure) }.result
    }

    /// One publication: nothing to do when an earlier one already carried this change.
    private func sendMetadata(failure: String) async {
        guard !isPublished(metadata) else { return }
        do {
            let taken = try await service.updateMetadata(metadata)
            published = taken
            // The service sets the version; a change made meanwhile keeps it for the next turn.
            metadata.version = taken.version
        } catch {
            logger.error("\(failure)", metadata: ["error": "\(error)"])
        }
    }

    /// True when the service took `candidate`'s content last (version and signature are the
    /// service's to set).
    private func isPublished(_ candidate: MemberMetadata) -> Bool {
        guard var taken = published else { return false }
        var wanted = candidate
        taken.version = 0
        taken.signature = []
        wanted.version = 0
        wanted.signature = []
        return taken == wanted
    }

    /// The health `Agent/Health` measured last (Protocol.md §11.1), gossiped with the capacity.
    private var health: (state: MemberMetadata.Health, reasons: [String]) = (.ok, [])

    /// Gossips this host's health now if it changed (reasons trimmed to what peers accept).
    func setHealth(_ state: MemberMetadata.Health, reasons: [String]) async {
        let trimmed = reasons.prefix(MemberMetadata.maxHealthReasons).map { reason in
            var r = reason
            while r.utf8.count > MemberMetadata.maxHealthReasonBytes { r.removeLast() }
            return r
        }
        health = (state, trimmed)
        // Unreadable memory keeps the host unhealthy whatever was measured (`capacity`).
        guard metadata.health != .unhealthy || HostMemory.reading() != nil else { return }
        guard metadata.health != state || metadata.healthReasons != trimmed else { return }
        var next = metadata
        next.health = state
        next.healthReasons = trimmed
        metadata = next
        await publish(failure: "cannot gossip this host's health; the next capacity refresh tries again")
    }

    /// Says in this host's gossiped metadata whether it is in maintenance (placement and
    /// `migrate --auto` then skip it).
    func setMaintenance(_ on: Bool) async {
        guard metadata.maintenance != on else { return }
        var next = metadata
        next.maintenance = on
        metadata = next
        await publish(failure: "cannot gossip this host's maintenance state; peers learn it from the replicated DRS record")
    }

    /// The capacity to advertise after `current`. Memory that cannot be read is not advertised
    /// as 0 free (a fact placement would act on): the last values stay and the host says it is
    /// unhealthy, which placement MUST avoid, as its own admission refuses without /proc/meminfo.
    /// A load that cannot be read keeps the last one.
    static func capacity(after current: MemberMetadata, memory: (total: UInt64, available: UInt64)?, load: Double?, cores: Int,
                         runningVMs: Int, migrationsInFlight: Int,
                         health: (state: MemberMetadata.Health, reasons: [String]) = (.ok, [])) -> MemberMetadata {
        var next = current
        next.cores = UInt32(cores)
        if let memory {
            next.memoryTotalBytes = memory.total
            next.memoryFreeBytes = memory.available
            next.health = health.state
            next.healthReasons = health.reasons
        } else {
            next.health = .unhealthy
            next.healthReasons = ["failing: cannot read /proc/meminfo"]
        }
        next.runningVMs = UInt32(runningVMs)
        next.migrationsInFlight = UInt32(migrationsInFlight)
        if let load { next.cpuLoadMilli = UInt32(load * 1000 / Double(max(1, cores))) }
        return next
    }

    /// The members as the command line shows them.
    func members() async -> [MemberRow] {
        await service.members().map { snapshot in
            let m = snapshot.member
            return MemberRow(host: m.id.hostID, domain: m.metadata?.domain ?? "", address: "\(m.address.host):\(m.address.port)",
                             status: "\(m.status)", incarnation: m.incarnation, cores: m.metadata?.cores ?? 0,
                             memoryFreeMiB: (m.metadata?.memoryFreeBytes ?? 0) >> 20, vms: m.metadata?.runningVMs ?? 0,
                             load: m.metadata?.cpuLoad ?? 0, migrations: m.metadata?.migrationsInFlight ?? 0,
                             lastUpdateSeconds: snapshot.sinceLastUpdate.inSeconds,
                             channel: m.metadata?.channelAddress.map { "\($0.host):\($0.port)" }, local: snapshot.isLocal)
        }
    }
}

/// Fingerprint bytes for metadata (the same value `SigningPublicKey.fingerprint` prints).
enum Blake2bFingerprint {
    static func of(_ key: [UInt8]) -> [UInt8] {
        Array(MeshCrypto.Blake2b.hash(key, outputLength: 32).prefix(8))
    }
}

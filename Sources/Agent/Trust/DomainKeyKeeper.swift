import ControlAPI
import Foundation
import Logging
import MeshIdentity
import MeshWire

/// Keeps this agent's domain key rotations (Protocol.md §2.10): records from the operator
/// (`domain.rotation.publish`), from peers (after a hello, or sent when they learn one) and from
/// the store at start are verified against the anchors in force, installed in the registry every
/// handshake reads (so the new key is trusted, or the retired one refused, at once), stored, and
/// sent on to every agent this one knows. No `keys trust` on any host.
actor DomainKeyKeeper {
    private let store: DomainKeyStore
    private let trust: TrustStore
    private let logger: Logger
    /// Sends an envelope to every known agent; set once the peers exist.
    private var broadcast: (@Sendable (Hostmesh_V1_AgentEnvelope) async -> Void)?
    /// Records refused so far (bad signature, unknown domain, retired old key...).
    private(set) var refused = 0

    init(store: DomainKeyStore, trust: TrustStore, logger: Logger) {
        self.store = store
        self.trust = trust
        self.logger = logger
    }

    /// At start, before any listener: installs the stored records that still verify, in order.
    @discardableResult
    func loadStored() throws -> Int {
        var installed = 0
        for bytes in try store.all() {
            do {
                let record = try DomainKeyRotation(serialized: bytes)
                if try trust.domainKeys.install(record, configured: trust.configuredAnchors) == .installed { installed += 1 }
            } catch {
                logger.error("a stored domain key rotation no longer verifies; ignoring it", metadata: ["error": "\(error)"])
            }
        }
        return installed
    }

    /// Connects the keeper to the peers it forwards new records to.
    func wire(broadcast: @escaping @Sendable (Hostmesh_V1_AgentEnvelope) async -> Void) {
        self.broadcast = broadcast
    }

    /// The envelope carrying every record held, or nil when there is none.
    nonisolated static func envelope(_ trust: TrustStore) -> Hostmesh_V1_AgentEnvelope? {
        let records = trust.domainKeys.records
        guard !records.isEmpty else { return nil }
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.domainKeyRotations.records = records.map { Data($0.serialized) }
        return envelope
    }

    /// Records a peer sent: each verified and installed in order; refusals are logged and
    /// counted; when any was new, every record held goes on to every known agent.
    func receive(_ records: [Data], from peer: String) async {
        var learned: [DomainKeyRotation] = []
        for bytes in records {
            do {
                if let record = try install([UInt8](bytes)) { learned.append(record) }
            } catch {
                refused += 1
                logger.warning("domain key rotation from a peer refused", metadata: ["mesh.peer": "\(peer)", "mesh.reason": "\(error)"])
            }
        }
        guard !learned.isEmpty else { return }
        for record in learned { describe(record, source: peer) }
        await forward()
    }

    /// The operator publishes a record: verified, installed, stored, sent on. Returns what changed.
    func publish(_ bytes: [UInt8]) async throws(ControlError) -> String {
        let record: DomainKeyRotation?
        do { record = try install(bytes) } catch {
            refused += 1
            logger.warning("domain key rotation refused", metadata: ["mesh.reason": "\(error)"])
            throw .badRequest("\(error)")
        }
        guard let record else {
            return "already held: this agent holds a version at least as new for that domain (nothing changed)"
        }
        describe(record, source: "the operator")
        await forward()
        return record.oldRetired
            ? "domain \(record.domain) retired key \(record.oldKey.fingerprint); only \(record.newKey.fingerprint) is trusted now (version \(record.version)), sent to every known agent"
            : "domain \(record.domain) now trusts key \(record.newKey.fingerprint) beside \(record.oldKey.fingerprint) (version \(record.version)), sent to every known agent"
    }

    /// Verifies and installs one record; stores it when new. Nil when it is not newer than the held one.
    private func install(_ bytes: [UInt8]) throws(IdentityError) -> DomainKeyRotation? {
        let record = try DomainKeyRotation(serialized: bytes)
        guard try trust.domainKeys.install(record, configured: trust.configuredAnchors) == .installed else { return nil }
        do { try store.save(record) } catch {
            // Enforced in memory already; lost at a restart until a peer sends it again (every hello does).
            logger.error("cannot store a domain key rotation", metadata: ["mesh.domain": "\(record.domain)", "error": "\(error)"])
        }
        return record
    }

    private func describe(_ record: DomainKeyRotation, source: String) {
        logger.notice(record.oldRetired ? "domain key retired" : "new domain key trusted", metadata: [
            "mesh.domain": "\(record.domain)", "mesh.old_domain_key": "\(record.oldKey.fingerprint)",
            "mesh.new_domain_key": "\(record.newKey.fingerprint)", "mesh.version": "\(record.version)", "mesh.source": "\(source)"])
    }

    private func forward() async {
        guard let broadcast, let envelope = Self.envelope(trust) else { return }
        await broadcast(envelope)
    }
}

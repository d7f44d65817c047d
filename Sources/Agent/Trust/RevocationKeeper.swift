import ControlAPI
import Foundation
import GossipTransport
import Logging
import Membership
import MeshIdentity

/// Enforces the domains' revocation lists on this agent (Protocol.md §2.5, §4.14): a list that
/// verifies and is newer than the one held is stored, installed in the registry every handshake
/// checks (which closes the open channels of the hosts it revokes, code 21), and the revoked
/// hosts are banned from gossip and forgotten by the overlay. Lists come from the operator
/// (`revocations.publish`), from gossip and push-pull, and from the store at start.
actor RevocationKeeper {
    private let store: RevocationStore
    private let trust: TrustStore
    private let hostID: String
    private let logger: Logger
    /// Bans hosts from gossip; set once the membership exists.
    private var membership: MembershipService?
    /// Forgets a revoked host elsewhere in the agent (peer addresses, overlay keys).
    private var forget: (@Sendable (String) async -> Void)?

    init(store: RevocationStore, trust: TrustStore, hostID: String, logger: Logger) {
        self.store = store
        self.trust = trust
        self.hostID = hostID
        self.logger = logger
    }

    /// Parses and verifies a list against the trust anchors: the refusal names what is wrong.
    static func verified(_ bytes: [UInt8], trust: TrustStore) throws(IdentityError) -> RevocationList {
        let list = try RevocationList(serialized: bytes)
        try trust.verify(list)
        return list
    }

    /// At start, before any listener: installs the stored lists that still verify, so the first
    /// handshake already refuses revoked hosts. Returns the lists installed.
    @discardableResult
    func loadStored() throws -> [RevocationList] {
        var installed: [RevocationList] = []
        for bytes in try store.all() {
            do {
                let list = try Self.verified(bytes, trust: trust)
                trust.revocations.install(list)
                installed.append(list)
            } catch {
                logger.error("a stored revocation list no longer verifies; ignoring it", metadata: ["error": "\(error)"])
            }
        }
        return installed
    }

    /// Connects the keeper to the membership and the rest of the agent.
    func wire(membership: MembershipService, forget: @escaping @Sendable (String) async -> Void) {
        self.membership = membership
        self.forget = forget
    }

    /// The operator publishes a list: verified, enforced at once, then gossiped.
    func publish(_ bytes: [UInt8]) async throws(ControlError) -> ControlTypes.RevocationListInfo {
        let list: RevocationList
        do { list = try Self.verified(bytes, trust: trust) } catch {
            logger.warning("revocation list refused", metadata: ["error": "\(error)"])
            throw .badRequest("\(error)")
        }
        let held = trust.revocations.current.version(of: list.domain)
        guard list.version > held else {
            var info = Self.info(trust.revocations.current.lists[list.domain] ?? list)
            info.note = "version \(list.version) is not newer than version \(held), already held: nothing changed"
            return info
        }
        await enforce(list, source: "published by the operator")
        if let membership {
            do {
                if let refusal = try await membership.learnRevocation(bytes) {
                    logger.error("the gossip service refused a list this agent verified", metadata: ["reason": "\(refusal)"])
                }
            } catch {
                logger.error("cannot gossip the revocation list (enforced here, stored; push-pull carries it later)", metadata: ["error": "\(error)"])
            }
        }
        var info = Self.info(list)
        info.note = "installed version \(list.version) (was \(held)); enforced here and gossiped to the mesh"
        return info
    }

    /// The gossip service learned a newer list (it verified it with the same anchors).
    func learned(_ notice: RevocationNotice) async {
        let list: RevocationList
        do { list = try Self.verified(notice.list, trust: trust) } catch {
            logger.error("a gossiped revocation list does not verify here; ignoring it", metadata: ["error": "\(error)"])
            return
        }
        await enforce(list, source: "learned from the mesh")
    }

    /// Stores, installs and bans. Storing comes first; a store that cannot be written does not
    /// stop enforcement (enforcing is the safe side), it is logged.
    private func enforce(_ list: RevocationList, source: String) async {
        do { try store.save(list) } catch {
            logger.error("cannot store the revocation list; enforcing it until restart only", metadata: [
                "mesh.domain": "\(list.domain)", "mesh.revocation.version": "\(list.version)", "error": "\(error)"])
        }
        let (_, cut) = trust.revocations.install(list)
        var hosts = Set(list.entries.filter { !$0.hostID.isEmpty }.map(\.hostID))
        for certificate in cut { hosts.insert(certificate.hostID) }
        if hosts.contains(hostID) {
            logger.critical("this host is revoked by its domain: other hosts refuse it; re-certify it or stop it", metadata: [
                "mesh.domain": "\(list.domain)", "mesh.revocation.version": "\(list.version)"])
            hosts.remove(hostID)
        }
        for entry in list.entries {
            logger.notice("revocation in force", metadata: [
                "mesh.domain": "\(list.domain)", "mesh.revocation.version": "\(list.version)", "mesh.revoked": "\(entry.summary)",
                "mesh.source": "\(source)"])
        }
        for certificate in cut {
            logger.warning("closed a channel to a revoked host", metadata: [
                "mesh.peer": "\(certificate.hostID)", "mesh.serial": "\(certificate.serial)", "mesh.domain": "\(list.domain)"])
        }
        if let membership, !hosts.isEmpty {
            do { try await membership.ban(Set(hosts.map { MemberID($0) })) } catch {
                logger.error("cannot ban revoked hosts from gossip", metadata: ["error": "\(error)"])
            }
        }
        if let forget { for host in hosts.sorted() { await forget(host) } }
    }

    /// The lists held, for `revocations`.
    func lists() -> [ControlTypes.RevocationListInfo] {
        let current = trust.revocations.current
        return current.lists.keys.sorted().compactMap { current.lists[$0].map(Self.info) }
    }

    static func info(_ list: RevocationList) -> ControlTypes.RevocationListInfo {
        ControlTypes.RevocationListInfo(
            domain: list.domain, version: list.version, issuedAt: list.body.issuedAt, issuer: list.issuerKey.fingerprint,
            entries: list.entries.map { entry in
                ControlTypes.RevocationEntryInfo(host: entry.hostID.isEmpty ? nil : entry.hostID, serial: entry.serial == 0 ? nil : entry.serial,
                                                 revokedAt: entry.revokedAt, reason: entry.reason)
            },
            list: Data(list.serialized).base64EncodedString())
    }
}

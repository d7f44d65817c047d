import ControlAPI
import Foundation
import GossipTransport
import Logging
import Membership
import MeshIdentity

/// Keeps this domain's federation grants on this agent (Protocol.md §2.9, §4.15): a grant that
/// verifies and is newer than the one held for its peer domain is stored, installed in the
/// registry every handshake checks (which closes the cross-domain channels it no longer lets
/// in, code 24) and gossiped. Grants come from the operator (`federation.publish`), from gossip
/// and push-pull, and from the store at start; the same path as revocation lists
/// (`RevocationKeeper`).
actor FederationKeeper {
    private let store: FederationStore
    private let trust: TrustStore
    private let domain: String
    private let logger: Logger
    private let unixTime: @Sendable () -> Int64
    /// Gossips grants; set once the membership exists.
    private var membership: MembershipService?
    /// Stops the switch carrying stretched segments to a domain (§8.9); set once the network exists.
    private var unlink: (@Sendable (String) async -> Int)?
    /// The grants (key and version) whose end already unlinked their domain.
    private var unlinked = Set<String>()

    init(store: FederationStore, trust: TrustStore, domain: String, logger: Logger,
         unixTime: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.store = store
        self.trust = trust
        self.domain = domain
        self.logger = logger
        self.unixTime = unixTime
    }

    /// Parses and verifies a grant for a host of `domain`: the refusal names what is wrong.
    static func verified(_ bytes: [UInt8], trust: TrustStore, domain: String, now: Int64) throws(IdentityError) -> FederationGrant {
        let grant = try FederationGrant(serialized: bytes)
        try trust.verify(grant, localDomain: domain, now: now)
        return grant
    }

    /// At start, before any listener: installs the stored grants that still verify, so the
    /// first handshake already knows which domains are let in. Returns the grants installed.
    @discardableResult
    func loadStored() throws -> [FederationGrant] {
        var installed: [FederationGrant] = []
        let now = unixTime()
        for bytes in try store.all() {
            do {
                let grant = try Self.verified(bytes, trust: trust, domain: domain, now: now)
                trust.federation.install(grant, now: now)
                installed.append(grant)
            } catch {
                logger.error("a stored federation grant no longer verifies; ignoring it", metadata: ["error": "\(error)"])
            }
        }
        return installed
    }

    /// Connects the keeper to the membership.
    func wire(membership: MembershipService, unlink: (@Sendable (String) async -> Int)? = nil) {
        self.membership = membership
        self.unlink = unlink
    }

    /// Unlinks the stretched segments of every grant held that is no longer in force (once per
    /// grant version): a revoked or expired grant stops the frames too, not only the channels.
    private func unlinkEnded() async {
        guard let unlink else { return }
        let now = unixTime()
        for grant in trust.federation.current.grants.values where grant.refusal(at: now, skew: trust.federation.skew) != nil {
            let key = "\(grant.key)#\(grant.version)#\(Self.status(grant, now: now))"
            guard !unlinked.contains(key) else { continue }
            unlinked.insert(key)
            let hosts = await unlink(grant.peerDomain)
            if hosts > 0 {
                logger.warning("stopped carrying stretched segments to a domain whose grant ended", metadata: [
                    "mesh.peer_domain": "\(grant.peerDomain)", "mesh.hosts": "\(hosts)"])
            }
        }
    }

    /// The operator publishes a grant: verified, enforced at once, then gossiped.
    func publish(_ bytes: [UInt8]) async throws(ControlError) -> ControlTypes.FederationGrantInfo {
        let now = unixTime()
        let grant: FederationGrant
        do { grant = try Self.verified(bytes, trust: trust, domain: domain, now: now) } catch {
            logger.warning("federation grant refused", metadata: ["error": "\(error)"])
            throw .badRequest("\(error)")
        }
        let held = trust.federation.current.version(of: grant.key)
        guard grant.version > held else {
            var info = Self.info(trust.federation.current.grants[grant.key] ?? grant, now: now)
            info.note = "version \(grant.version) is not newer than version \(held), already held: nothing changed"
            return info
        }
        enforce(grant, source: "published by the operator")
        if let membership {
            do {
                if let refusal = try await membership.learnFederationGrant(bytes) {
                    logger.error("the gossip service refused a grant this agent verified", metadata: ["reason": "\(refusal)"])
                }
            } catch {
                logger.error("cannot gossip the federation grant (enforced here, stored; push-pull carries it later)", metadata: ["error": "\(error)"])
            }
        }
        var info = Self.info(grant, now: now)
        info.note = "installed version \(grant.version) (was \(held)); enforced here and gossiped to the mesh"
        return info
    }

    /// The gossip service learned a newer grant (it verified it with the same anchors).
    func learned(_ notice: FederationGrantNotice) {
        let grant: FederationGrant
        do { grant = try Self.verified(notice.grant, trust: trust, domain: domain, now: unixTime()) } catch {
            logger.error("a gossiped federation grant does not verify here; ignoring it", metadata: ["error": "\(error)"])
            return
        }
        enforce(grant, source: "learned from the mesh")
    }

    /// Closes the cross-domain channels whose grant expired (run about once a second).
    func sweep() async {
        let cut = trust.federation.sweep(now: unixTime())
        if cut > 0 { logger.warning("closed cross-domain channels: their grant expired", metadata: ["mesh.channels": "\(cut)"]) }
        await unlinkEnded()
    }

    /// Stores and installs. Storing comes first; a store that cannot be written does not stop
    /// enforcement (a revocation enforced until restart only is still the safe side), it is logged.
    private func enforce(_ grant: FederationGrant, source: String) {
        do { try store.save(grant) } catch {
            logger.error("cannot store the federation grant; enforcing it until restart only", metadata: [
                "mesh.federation.grant": "\(grant.key)", "mesh.federation.version": "\(grant.version)", "error": "\(error)"])
        }
        let now = unixTime()
        let (_, cut) = trust.federation.install(grant, now: now)
        logger.notice(grant.isRevoked ? "federation grant revoked" : "federation grant in force", metadata: [
            "mesh.domain": "\(grant.domain)", "mesh.peer_domain": "\(grant.peerDomain)", "mesh.federation.version": "\(grant.version)",
            "mesh.federation.status": "\(Self.status(grant, now: now))", "mesh.source": "\(source)"])
        if cut > 0 {
            logger.warning("closed cross-domain channels the grant no longer lets in", metadata: [
                "mesh.peer_domain": "\(grant.peerDomain)", "mesh.channels": "\(cut)",
                "mesh.reason": "\(grant.refusal(at: now, skew: trust.federation.skew) ?? "the grant names another key")"])
        }
    }

    /// The grants held, for `federation`.
    func grants() -> [ControlTypes.FederationGrantInfo] {
        let now = unixTime()
        let current = trust.federation.current
        return current.grants.keys.sorted().compactMap { current.grants[$0].map { Self.info($0, now: now) } }
    }

    static func status(_ grant: FederationGrant, now: Int64) -> String {
        if grant.isRevoked { return "revoked" }
        if now < grant.body.notBefore { return "not yet valid" }
        if now >= grant.body.notAfter { return "expired" }
        return "in force"
    }

    static func info(_ grant: FederationGrant, now: Int64) -> ControlTypes.FederationGrantInfo {
        let body = grant.body
        return ControlTypes.FederationGrantInfo(
            domain: grant.domain, peerDomain: grant.peerDomain, peerKey: grant.peerDomainKey.fingerprint, version: grant.version,
            status: status(grant, now: now), notBefore: body.notBefore, notAfter: body.notAfter, allVMs: body.allVms, labels: body.vmLabels,
            networks: body.networks.map { ControlTypes.NetworkMappingInfo(peerNetwork: $0.peerNetwork, localNetwork: $0.localNetwork, stretched: $0.stretched) },
            storageDirectory: body.storageDirectory, issuer: grant.issuerKey.fingerprint, reason: body.reason,
            grant: Data(grant.serialized).base64EncodedString())
    }
}

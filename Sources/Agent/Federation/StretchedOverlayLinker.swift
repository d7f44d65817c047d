import ControlAPI
import Foundation
import Logging
import MeshIdentity
import MeshWire
import MigrationService
import NIOConcurrencyHelpers
import SecureChannel
import VirtualSwitch

/// Carries a grant's stretched networks between this host and one host of the federated domain
/// (Protocol.md §8.9): on the `cross-domain-migration` channel between the two hosts of a
/// migration, each sends an `XdomainOverlayHello` (its overlay address, its stretched networks
/// with its segment ids, its own MAC locations on them), and both key the pair's overlay from that
/// channel's exported secret, naming each other `host@domain`. From then on the two switches
/// carry those segments (and only those) between them, translating segment ids, so a VM that
/// moved keeps its peers in the domain it left.
struct StretchedOverlayLinker: Sendable {
    let network: AgentNetwork
    let credentials: ChannelCredentials
    /// This host's overlay as it advertises it (nil: no overlay).
    let overlay: HostPort?
    /// Where this host's agent takes channels, as it advertises it (sent in the hello, so the peer
    /// can link again after its restart).
    let channel: HostPort
    /// The links made, kept across restarts.
    let links: StretchedLinkStore
    let logger: Logger
    /// When each peer (`host@domain`) last linked with this host by dialing it (this process).
    let dialedBy = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])

    private var domain: String { credentials.certificate.domain }

    /// The networks of `grant` that this domain stretches, by this domain's name, with the
    /// other domain's name for each.
    static func stretched(_ grant: FederationGrant) -> [(local: String, peer: String)] {
        grant.body.networks.filter(\.stretched).map { ($0.localNetwork, $0.peerNetwork) }
    }

    /// This host's hello for `grant`'s peer domain.
    func hello(for grant: FederationGrant) async -> Hostmesh_V1_XdomainOverlayHello {
        var hello = Hostmesh_V1_XdomainOverlayHello()
        guard let overlay else {
            hello.error = "host \(credentials.identity.hostID) of domain \(domain) runs no overlay: give it overlay_listen"
            return hello
        }
        hello.overlayAddress = "\(overlay)"
        hello.channelAddress = "\(channel)"
        var segments = Set<SegmentID>()
        for (local, _) in Self.stretched(grant) {
            guard let segment = network.segment(of: local) else { continue }
            segments.insert(segment)
            var entry = Hostmesh_V1_XdomainStretchedSegment()
            entry.network = local
            entry.segment = segment.rawValue
            hello.segments.append(entry)
        }
        if hello.segments.isEmpty {
            hello.error = "domain \(domain) stretches none of its networks to domain \(grant.peerDomain) on host \(credentials.identity.hostID): map them with THEIRS=OURS:stretched in its grant, and define them on the host"
        }
        hello.locations = Data(OverlayControlCodec.encode(await network.virtualSwitch.gatewayLocations(on: segments)))
        return hello
    }

    /// At most this many hosts of one federated domain are linked with this host at a time (§8.9).
    static let maxLinksPerDomain = 8
    /// At most this many MAC locations in one hello (a gateway's whole domain on the stretched
    /// segments, §8.9); a hello with more is refused before any is applied.
    static let maxHelloLocations = 16_384

    /// Where `hello`'s sender's overlay is reached: the IP its channel came from (`remoteIP`),
    /// never the host the hello names (which would let a peer aim this host's encrypted datagrams
    /// at any address), with the hello's port. Throws when either is missing or malformed.
    static func overlayAddress(_ hello: Hostmesh_V1_XdomainOverlayHello, remoteIP: String?) throws -> HostPort {
        let advertised = try HostPort(parsing: hello.overlayAddress)
        guard let remoteIP, !remoteIP.isEmpty else {
            throw ControlError.conflict("the channel's remote address is unknown: the overlay of a host of another domain is reached only where its channel came from")
        }
        return HostPort(host: remoteIP, port: advertised.port)
    }

    /// Why `peer` (`host@domain`) may not be linked while `linked` (every stretched peer, as
    /// `host@domain`) are: `maxLinksPerDomain` hosts of its domain are linked already. nil: it
    /// may (one linked already is keyed afresh).
    static func capRefusal(_ peer: String, domain: String, linked: [String]) -> String? {
        let same = Set(linked.filter { $0.hasSuffix("@" + domain) })
        guard !same.contains(peer), same.count >= maxLinksPerDomain else { return nil }
        return "\(same.count) hosts of domain \(domain) are linked already (at most \(maxLinksPerDomain)): \(peer) is not linked; migrate through a host already linked, or end the grant for domain \(domain) (links go with it, §8.9) and grant it again"
    }

    /// Keys the overlay with `peer` (a host of `grant`'s peer domain, its host id there) from
    /// `connection` (both ends of that channel derive the same keys) and applies its hello.
    /// `remoteIP`: where the channel's peer is (read while the channel is open; by default now).
    /// `dialed`: the address this host dialed the peer at (nil: the peer dialed this host).
    func link(_ hello: Hostmesh_V1_XdomainOverlayHello, from peer: String, grant: FederationGrant, on connection: SecureConnection,
              remoteIP: String? = nil, dialed: HostPort? = nil) async throws {
        guard hello.error.isEmpty else { throw ControlError.conflict("\(peer)@\(grant.peerDomain) will not carry the stretched segment: \(hello.error)") }
        let remoteIP = remoteIP ?? connection.channel.channel.remoteAddress?.ipAddress
        let address = try Self.overlayAddress(hello, remoteIP: remoteIP)
        let linked = await network.virtualSwitch.stretchedPeers().map(\.rawValue)
        if let refusal = Self.capRefusal(PeerName.qualified(host: peer, domain: grant.peerDomain), domain: grant.peerDomain, linked: linked) {
            throw ControlError.conflict(refusal)
        }
        var segments: [SegmentID: SegmentID] = [:]
        let theirs = Dictionary(hello.segments.map { ($0.network, $0.segment) }, uniquingKeysWith: { first, _ in first })
        for (local, peerName) in Self.stretched(grant) {
            guard let ours = network.segment(of: local), let segment = theirs[peerName], SegmentID(segment).isValid else { continue }
            segments[ours] = SegmentID(segment)
        }
        guard !segments.isEmpty else {
            throw ControlError.conflict("no network is stretched on both sides between \(credentials.identity.hostID) and \(peer)@\(grant.peerDomain): map the same networks as stretched in both grants")
        }
        let name = PeerName.qualified(host: peer, domain: grant.peerDomain)
        let link = StretchedLink(localName: HostID(PeerName.qualified(host: credentials.identity.hostID, domain: domain)),
                                 peerOwnName: HostID(peer), segments: segments)
        let locations = try OverlayControlCodec.decode([UInt8](hello.locations))
        guard locations.count <= Self.maxHelloLocations else {
            throw ControlError.conflict("the stretched-link hello of \(peer)@\(grant.peerDomain) carries \(locations.count) MAC locations, more than the "
                                        + "\(Self.maxHelloLocations) one link takes (§8.9): stretch fewer or smaller networks to domain \(domain)")
        }
        try await network.linkStretched(name, overlay: address, session: connection.session, link: link, locations: locations)
        logger.info("stretched segments linked with a host of another domain", metadata: [
            "mesh.peer": "\(name)", "mesh.overlay": "\(address)", "vswitch.segments": "\(segments.sorted { $0.key < $1.key }.map { "\($0.key)->\($0.value)" })"])
        if dialed == nil { dialedBy.withLockedValue { $0[name] = .now } }
        remember(peer, domain: grant.peerDomain, at: dialed ?? Self.channelAddress(hello, remoteIP: remoteIP))
    }

    /// Whether `peer` (`host@domain`) dialed this host and linked since `instant`.
    func wasDialed(by peer: String, since instant: ContinuousClock.Instant) -> Bool {
        dialedBy.withLockedValue { $0[peer].map { $0 >= instant } ?? false }
    }

    /// Where to dial the sender of `hello` again: the port it names, at the IP its channel came
    /// from (as for the overlay); nil when it names none (a peer of an older version) or garbage.
    static func channelAddress(_ hello: Hostmesh_V1_XdomainOverlayHello, remoteIP: String?) -> HostPort? {
        // No address to dial back (none named, or not an address): this host does not link
        // again after its restart; the peer does after its own, as it dialed.
        guard let remoteIP, !remoteIP.isEmpty, let advertised = try? HostPort(parsing: hello.channelAddress), advertised.port > 0 else {
            return nil
        }
        return HostPort(host: remoteIP, port: advertised.port)
    }

    /// Keeps the link to `peer` for after a restart (§8.9). The link works without the row; a
    /// store that fails loses only the re-link after a restart, which is said.
    private func remember(_ peer: String, domain: String, at address: HostPort?) {
        // A grant that ended while the link was made has had its rows deleted already: none now.
        guard let address, let grant = credentials.trust.federation.current.grant(of: self.domain, for: domain),
              grant.refusal(at: Int64(Date().timeIntervalSince1970), skew: credentials.trust.clockSkewSeconds) == nil else { return }
        do { try links.remember(StretchedLinkStore.Link(host: peer, domain: domain, address: address)) } catch {
            logger.error("cannot keep a stretched link in the store: after a restart this host will not link it again until a VM moves between the two", metadata: [
                "mesh.peer": "\(PeerName.qualified(host: peer, domain: domain))", "error": "\(error)"])
        }
    }

    /// Source: opens a `cross-domain-migration` channel to the destination `host` at `address`
    /// (of `grant`'s peer domain), exchanges hellos and keys the overlay with it.
    func linkTo(_ host: String, at address: HostPort, grant: FederationGrant) async throws {
        var configuration = SecureChannelConfiguration(credentials: credentials, handshakeTimeout: .seconds(5))
        configuration.policy.purpose = FederationGrant.migrationPurpose
        configuration.policy.targetDomain = grant.peerAnchor
        configuration.policy.requiredDomain = grant.peerDomain
        configuration.policy.expectedPeer = host
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.xdomainOverlayHello = await hello(for: grant)
        guard envelope.xdomainOverlayHello.error.isEmpty else { throw ControlError.conflict(envelope.xdomainOverlayHello.error) }
        // The channel closes after the answer; its exported secret (the overlay's keys) outlives it.
        let connection = try await SecureConnection.connect(host: address.host, port: address.port, configuration: configuration, logger: logger)
        let remoteIP = connection.channel.channel.remoteAddress?.ipAddress // before the request closes the channel
        let answer = try await connection.request(envelope)
        guard case .xdomainOverlayHello(let reply)? = answer?.body else {
            throw ControlError.failed("\(host)@\(grant.peerDomain) did not answer the overlay hello (an agent that carries no stretched segment closes the channel)")
        }
        try await link(reply, from: host, grant: grant, on: connection, remoteIP: remoteIP, dialed: address)
    }
}

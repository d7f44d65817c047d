import ControlAPI
import Foundation
import Logging
import MeshIdentity
import MeshWire
import Migration
import NIOConcurrencyHelpers
import SecureChannel

/// What every run of a migration on this host shares: the journal, the VMs, the switch, the
/// host's credentials and what it knows of its peers.
struct MigrationContext: Sendable {
    let journal: any MigrationJournaling
    let vms: any MigrationVMRegistry
    /// The virtual switch whose ports move with the VMs (nil: VMs have no network).
    let ports: (any MigrationPortMover)?
    let observer: any MigrationObserver
    /// Signs the source's handover statement at commit (Protocol.md §6.12).
    let evidence: any MigrationHandoverEvidence
    let credentials: ChannelCredentials
    let logger: Logger
    /// Where other agents are now (host id → channel address), from hellos and membership.
    let peerAddresses: NIOLockedValueBox<[String: HostPort]>
    /// Migration id → who may open its streams and where they go, read by stream acceptors on event loops.
    let streamAuthorizations: NIOLockedValueBox<[String: StreamAuthorization]>
    /// How long to wait for the destination's answer to a commit before the handover is in doubt.
    let commitAnswerTimeout: Duration
    /// The congestion control of the stream's sending sockets at distance (Protocol.md §6.11),
    /// as configured, then as last reloaded: streams dialled from then on use the new one.
    let streamCongestionSetting: NIOLockedValueBox<StreamCongestionControl.Choice>

    var streamCongestionControl: StreamCongestionControl.Choice { streamCongestionSetting.withLockedValue { $0 } }

    var hostID: String { credentials.identity.hostID }
    /// This host's domain: peers of other domains are named `host@domain` (`PeerName`).
    var domain: String { credentials.certificate.domain }

    /// Opens a control channel to a migration's peer, sends one envelope and (optionally) waits
    /// for one answer. The peer is asked where it is now (it may have restarted elsewhere), else
    /// where it was; throws when it cannot be reached.
    func ask(_ row: JournaledMigration, _ envelope: Hostmesh_V1_AgentEnvelope, expectAnswer: Bool) async throws -> Hostmesh_V1_AgentEnvelope? {
        let knowsHostID = row.peer != row.peerAddress
        let current = knowsHostID ? peerAddresses.withLockedValue { $0[row.peer] } : nil
        // A journaled address that does not parse is as good as none: `peerUnknown` below says so.
        guard let address = current ?? row.peerAddress.flatMap({ try? HostPort(parsing: $0) }) else {
            throw MigrationServiceError.peerUnknown(row.peer)
        }
        var control = SecureChannelConfiguration(credentials: credentials, handshakeTimeout: .seconds(3))
        control.policy.purpose = "control"
        control.policy.expectedPeer = knowsHostID ? row.peer : nil
        // A host of another domain (Protocol.md §6.10) is asked on a cross-domain channel, with
        // that domain's key from the grant held (none held any more: it cannot be asked).
        let (host, domain) = PeerName.split(row.peer)
        if let domain {
            guard let anchor = CrossDomainTarget.anchor(of: domain, in: credentials.trust) else {
                throw MigrationServiceError.peerUnknown("\(row.peer): this domain holds no grant for domain \(domain) any more")
            }
            control.policy.purpose = FederationGrant.migrationPurpose
            control.policy.targetDomain = anchor
            control.policy.requiredDomain = domain
            control.policy.expectedPeer = host
        }
        let connection = try await SecureConnection.connect(host: address.host, port: address.port, configuration: control, logger: logger)
        return try await connection.request(envelope, expectAnswer: expectAnswer)
    }
}

/// The streams an admitted incoming migration accepts: only from its source, into its QEMU.
struct StreamAuthorization: Sendable {
    /// The source's host id.
    let source: String
    /// QEMU's incoming migration socket ("migration-stream").
    let migrationSocket: String
    /// QEMU's NBD server socket ("nbd-stream"), when the migration mirrors local disks.
    let nbdSocket: String?

    /// Where a stream of `purpose` from host `peer` for `migration` goes, given what was admitted
    /// for it (nil: nothing); throws the close reason the peer is sent otherwise.
    static func socket(_ admitted: StreamAuthorization?, migration: String, purpose: String, peer: String) throws -> String {
        guard let purpose = StreamPurpose(rawValue: purpose) else {
            throw SecureChannelError(.protocolViolation, "\(purpose) is not a stream purpose")
        }
        guard let admitted else {
            throw SecureChannelError(.protocolViolation, "no migration \(migration) is being received here")
        }
        guard admitted.source == peer else {
            throw SecureChannelError(.unexpectedPeer, "migration \(migration) was admitted from \(admitted.source), not \(peer)")
        }
        switch purpose {
        case .migration:
            return admitted.migrationSocket
        case .nbd:
            guard let socket = admitted.nbdSocket else {
                throw SecureChannelError(.protocolViolation, "migration \(migration) mirrors no disks here")
            }
            return socket
        }
    }
}

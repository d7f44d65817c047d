public import ControlAPI
import Foundation
public import Hypervisor
public import Logging
import MeshCrypto
public import NIOCore
import NIOPosix
public import SecureChannel
public import VirtualSwitch
public import MigrationService

/// The agent's side of network identity: its virtual switch, the ports of its VMs' NICs, and
/// the overlay keys it shares with other agents.
public actor AgentNetwork: MigrationPortMover {
    /// The switch.
    public let virtualSwitch: VirtualSwitch
    private let networks: [String: Network]
    private let logger: Logger
    /// How long a migrated VM's ports wait, after it resumed here, for it to announce itself.
    let activationTimeout: Duration
    /// VM id → the host it moves to, from the guest's pause to the end of its switchover.
    private var destinations: [String: String] = [:]
    /// VM id → QEMU's STOP timestamp of its switchover (seconds since the Unix epoch), likewise.
    private var guestStops: [String: Double] = [:]

    /// A switch for `hostID` with its overlay on `overlay`, knowing `networks`.
    public init(hostID: String, overlay: HostPort, networks: [String: UInt32], activationTimeout: Duration = .seconds(10),
                settings: SwitchSettings = SwitchSettings(), logger: Logger) throws {
        let address: SocketAddress
        do { address = try SocketAddress.makeAddressResolvingHost(overlay.host, port: overlay.port) } catch {
            throw AgentError.badConfiguration(path: "overlay_listen", reason: "cannot use \(overlay): \(error)")
        }
        virtualSwitch = VirtualSwitch(configuration: .init(hostID: HostID(hostID), overlayAddress: address, settings: settings),
                                      eventLoop: AgentEventLoops.latency.next())
        self.networks = Dictionary(uniqueKeysWithValues: networks.map { ($0.key, Network(name: $0.key, segment: SegmentID($0.value))) })
        self.logger = logger
        self.activationTimeout = activationTimeout
    }

    /// Starts the switch and declares the networks.
    public func start() async throws {
        do {
            try await virtualSwitch.start()
            for network in networks.values { try await virtualSwitch.addNetwork(network) }
        } catch {
            await virtualSwitch.stop()
            throw AgentError.badConfiguration(path: "overlay_listen", reason: "the virtual switch cannot start: \(error)")
        }
    }

    /// Stops the switch (closes its sockets).
    public func stop() async { await virtualSwitch.stop() }

    /// The overlay's bound address (to advertise to other agents).
    public func overlayAddress() async -> SocketAddress? { await virtualSwitch.overlayAddress() }

    /// `spec` with this host's own socket paths for its NICs (the migration's port mover).
    public nonisolated func localize(_ spec: VMSpec, directory: VMRuntimeDirectory) -> VMSpec {
        Self.localize(spec, directory: directory)
    }

    /// The socket paths a NIC uses on this host, in the VM's runtime directory.
    public nonisolated static func localize(_ spec: VMSpec, directory: VMRuntimeDirectory) -> VMSpec {
        var spec = spec
        for index in spec.nics.indices where spec.nics[index].network != nil {
            let nic = spec.nics[index]
            spec.nics[index].attachment = .dgram(localPath: directory.path + "/\(nic.id).vm.sock", remotePath: directory.path + "/\(nic.id).sw.sock")
        }
        return spec
    }

    static func portID(_ spec: VMSpec, _ nic: VMSpec.NIC) -> PortID { PortID("\(spec.id)/\(nic.id)") }

    private func configuration(_ spec: VMSpec, _ nic: VMSpec.NIC) throws -> PortConfiguration {
        guard let name = nic.network, networks[name] != nil else {
            throw AgentError.badConfiguration(path: "nic \(nic.id)", reason: "network \(nic.network ?? "") is not configured on this host (networks: \(networks.keys.sorted().joined(separator: ", ")))")
        }
        guard let mac = MACAddress(nic.mac) else { throw AgentError.badConfiguration(path: "nic \(nic.id)", reason: "bad MAC \(nic.mac)") }
        let prefixes = try nic.addresses.map { text -> IPPrefix in
            guard let prefix = IPPrefix(text.contains("/") ? text : text + (text.contains(":") ? "/128" : "/32")) else {
                throw AgentError.badConfiguration(path: "nic \(nic.id)", reason: "bad address \(text) (use CIDR, e.g. 10.77.0.2/32)")
            }
            return prefix
        }
        let policy = SecurityPolicy(ingress: try FirewallRuleText.rules(nic.ingress, nic: nic.id),
                                    egress: try FirewallRuleText.rules(nic.egress, nic: nic.id))
        return PortConfiguration(id: Self.portID(spec, nic), network: name, mac: mac, allowedIPs: prefixes, policy: policy)
    }

    /// Checks what a VM's NICs ask of this switch (network known, MAC, addresses, firewall rules)
    /// without creating anything: at `vm create`, so a mistake is named before the VM exists.
    public func validate(_ spec: VMSpec) throws {
        for nic in spec.nics where nic.network != nil { _ = try configuration(spec, nic) }
    }

    /// The pre-flight checklist's network item (Protocol.md §6.9): as `validate`.
    public func checkNetworks(_ spec: VMSpec) throws { try validate(spec) }

    private func attachment(_ nic: VMSpec.NIC) -> PortAttachment? {
        guard case let .dgram(localPath, remotePath) = nic.attachment else { return nil }
        // The sockets live in the VM's runtime directory, which may not exist yet.
        try? FileManager.default.createDirectory(atPath: (remotePath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        return PortAttachment(switchSocketPath: remotePath, vmSocketPath: localPath)
    }

    /// Creates (or re-creates after an agent restart) the active ports of a VM that runs here.
    public func attach(_ spec: VMSpec) async throws {
        for nic in spec.nics where nic.network != nil {
            guard let attachment = attachment(nic) else { continue }
            let id = Self.portID(spec, nic)
            if await virtualSwitch.portStatus(id) != nil { continue }
            try await virtualSwitch.createPort(try configuration(spec, nic), attachment: attachment)
        }
    }

    /// Removes a VM's ports (it stopped, or it now lives elsewhere).
    public func detach(_ spec: VMSpec) async {
        for nic in spec.nics where nic.network != nil {
            // Best effort: a port that is gone already (never created, or removed before) is the goal.
            try? await virtualSwitch.removePort(Self.portID(spec, nic))
        }
    }

    /// Source of a migration: the ports' state records.
    public func exportPorts(_ spec: VMSpec) async throws -> [[UInt8]] {
        var records: [[UInt8]] = []
        for nic in spec.nics where nic.network != nil {
            records.append(try await virtualSwitch.exportPortState(Self.portID(spec, nic)).serializedBytes())
        }
        return records
    }

    /// Destination: creates the ports blocked from the source's records; they activate on the
    /// VM's first announcement (no deadline yet: pre-copy may take any time; see `resumed`).
    public func importPorts(_ spec: VMSpec, records: [[UInt8]]) async throws {
        for bytes in records {
            var record = try PortStateRecord(serializedBytes: bytes)
            guard let nic = spec.nics.first(where: { Self.portID(spec, $0) == record.configuration.id }), let attachment = attachment(nic) else {
                throw AgentError.protocolViolation("port \(record.configuration.id) does not belong to VM \(spec.id)")
            }
            // From another domain the spec names this domain's network (mapped, §8.9); the record the source's.
            if let network = nic.network { record.configuration.network = network }
            // A VM coming back within the straggler grace period finds its old port still
            // forwarding to where it went: that port is obsolete now.
            // A removal that failed makes the import below fail with the switch's reason: not lost.
            if await virtualSwitch.portStatus(record.configuration.id) != nil { try? await virtualSwitch.removePort(record.configuration.id) }
            try await virtualSwitch.importPort(record, attachment: attachment)
        }
    }

    /// Destination, the guest resumes here after the commit: it runs here and nowhere else, so
    /// its ports activate now (claiming its MAC and handing what they held to QEMU's socket,
    /// Protocol.md §8.6.1), before QEMU runs it: the frames it sends at once (answers it had
    /// queued at the stop, retransmissions) pass instead of meeting a blocked port, and QEMU's
    /// first announcement, 50 ms or more after the resume, is not awaited. A port that cannot be
    /// activated now waits for the announcement, at most `activationTimeout` from `resumed`.
    public func resuming(_ spec: VMSpec) async {
        for nic in spec.nics where nic.network != nil {
            do { try await virtualSwitch.activatePort(Self.portID(spec, nic)) } catch {
                logger.debug("port not activated at the resume: waiting for the guest's announcement",
                             metadata: ["vm.id": "\(spec.id)", "vswitch.port": "\(Self.portID(spec, nic))", "error": "\(error)"])
            }
        }
    }

    /// Source: when the last frame from the guest reached its ports, the latest of its NICs'.
    public func lastFrameFromGuest(_ spec: VMSpec) async -> Double? {
        var last: Double?
        for nic in spec.nics where nic.network != nil {
            guard let at = await virtualSwitch.lastFrameFromVM(Self.portID(spec, nic)) else { continue }
            last = max(last ?? at, at)
        }
        return last
    }

    /// Destination: the first frames from the guest after `resuming` activated its ports, all
    /// NICs', in time order (seconds since the Unix epoch, and what kind of frame).
    public func framesFromGuest(_ spec: VMSpec) async -> [(at: Double, kind: String)] {
        var frames: [(at: Double, kind: String)] = []
        for nic in spec.nics where nic.network != nil { frames += await virtualSwitch.framesAfterActivation(Self.portID(spec, nic)) }
        return frames.sorted { $0.at < $1.at }
    }

    /// Destination, the guest runs here: frames its socket could not take while QEMU had it
    /// stopped go now, and a port still blocked gets its activation deadline.
    public func resumed(_ spec: VMSpec) async {
        for nic in spec.nics where nic.network != nil {
            await virtualSwitch.guestRunning(Self.portID(spec, nic))
            do { try await virtualSwitch.armActivation(Self.portID(spec, nic), timeout: activationTimeout) } catch {
                logger.error("cannot arm the port's activation deadline: it stays blocked until the guest announces itself",
                             metadata: ["vm.id": "\(spec.id)", "vswitch.port": "\(Self.portID(spec, nic))", "error": "\(error)"])
            }
        }
    }

    /// Source, QEMU stopped the guest for the switchover (at `stoppedAt`, QEMU's timestamp): its
    /// ports hold frames for it, and `freeze` sends them on to `destination`, with copies of those
    /// handed to QEMU's socket since `stoppedAt` (Protocol.md §8.6.1).
    public func guestPaused(_ spec: VMSpec, movingTo destination: String, stoppedAt: Double?) async {
        destinations[spec.id] = destination
        guestStops[spec.id] = stoppedAt
        var pausedAny = false
        for nic in spec.nics where nic.network != nil {
            do {
                try await virtualSwitch.pausePort(Self.portID(spec, nic))
                pausedAny = true
            } catch {
                logger.warning("cannot pause the port: frames for the paused guest go to its socket and may be lost",
                               metadata: ["vm.id": "\(spec.id)", "vswitch.port": "\(Self.portID(spec, nic))", "error": "\(error)"])
            }
        }
        // A STOP reported after the freeze (its port no longer active) must leave nothing behind:
        // a later move of the same VM whose freeze beat its STOP would take this destination and
        // time for its own.
        if !pausedAny { forgetMove(spec.id) }
    }

    /// The guest was paused in place (`vm pause`): its ports hold frames for it, within the
    /// bounds of Protocol.md §8.6.1, until `resumedInPlace` (or the hold's age bound ends it).
    public func pausedInPlace(_ spec: VMSpec) async {
        for nic in spec.nics where nic.network != nil {
            do { try await virtualSwitch.pausePort(Self.portID(spec, nic)) } catch {
                logger.warning("cannot pause the port: frames for the paused guest wait in its socket, and what does not fit there is lost",
                               metadata: ["vm.id": "\(spec.id)", "vswitch.port": "\(Self.portID(spec, nic))", "error": "\(error)"])
            }
        }
    }

    /// The guest paused in place is about to run again: its ports deliver what they held, in
    /// order (to QEMU's socket and the switch's backlog until QEMU reads).
    public func resumedInPlace(_ spec: VMSpec) async {
        for nic in spec.nics where nic.network != nil {
            do { try await virtualSwitch.resumePort(Self.portID(spec, nic)) } catch {
                logger.warning("cannot resume the port: the frames it held are delivered when its hold's age bound ends",
                               metadata: ["vm.id": "\(spec.id)", "vswitch.port": "\(Self.portID(spec, nic))", "error": "\(error)"])
            }
        }
    }

    /// The guest's QEMU reads its socket again: what waits in the switch's backlog goes now.
    public func guestRunsAgain(_ spec: VMSpec) async {
        for nic in spec.nics where nic.network != nil { await virtualSwitch.guestRunning(Self.portID(spec, nic)) }
    }

    private func forgetMove(_ vm: String) {
        destinations[vm] = nil
        guestStops[vm] = nil
    }

    /// Source at switchover: freezes the ports; returns their final deltas.
    public func freeze(_ spec: VMSpec) async throws -> [[UInt8]] {
        var deltas: [[UInt8]] = []
        for nic in spec.nics where nic.network != nil {
            let destination = destinations[spec.id].map { HostID($0) }
            deltas.append(try await virtualSwitch.freezePort(Self.portID(spec, nic), destination: destination,
                                                             guestStoppedAt: guestStops[spec.id]).serializedBytes())
        }
        // Taken once: the destination is known to the frozen ports now (a rollback or the
        // stragglers' forwarding clear them too).
        guestStops[spec.id] = nil
        return deltas
    }

    /// Destination before resuming: applies the source's final deltas.
    public func apply(deltas: [[UInt8]]) async throws {
        for bytes in deltas { try await virtualSwitch.applyPortDelta(try PortStateDelta(serializedBytes: bytes)) }
    }

    /// Source after a failed switchover: the ports forward again (frozen or paused ones deliver
    /// what they held; an active one has nothing to undo).
    public func unfreeze(_ spec: VMSpec) async {
        destinations[spec.id] = nil
        guestStops[spec.id] = nil
        for nic in spec.nics where nic.network != nil {
            do { try await virtualSwitch.unfreezePort(Self.portID(spec, nic)) } catch VirtualSwitchError.switch(.wrongState(_, is: .active, _)) {
                continue
            } catch {
                logger.error("cannot unfreeze the port after a failed switchover: the guest runs here without network",
                             metadata: ["vm.id": "\(spec.id)", "vswitch.port": "\(Self.portID(spec, nic))", "error": "\(error)"])
            }
        }
    }

    /// Source after commit: frames still arriving for the VM go to its new host for a while.
    public func forwardStragglers(_ spec: VMSpec, to host: String) async {
        destinations[spec.id] = nil
        guestStops[spec.id] = nil
        for nic in spec.nics where nic.network != nil {
            do { try await virtualSwitch.forwardStragglers(Self.portID(spec, nic), to: HostID(host)) } catch {
                logger.warning("cannot forward straggling frames to the VM's new host: they are dropped (the guest's peers retransmit)",
                               metadata: ["vm.id": "\(spec.id)", "mesh.peer": "\(host)", "error": "\(error)"])
            }
        }
    }

    /// Keys the overlay with a peer from a channel's exported secret (both ends derive the same).
    public func setPeer(_ host: String, overlay: HostPort, session: ChannelSession) async {
        do {
            let address = try SocketAddress.makeAddressResolvingHost(overlay.host, port: overlay.port)
            try await virtualSwitch.setPeer(HostID(host), address: address, sharedSecret: session.exportKey(label: OverlayKeys.exportLabel),
                                            algorithm: session.aead)
            logger.debug("overlay peer keyed", metadata: ["mesh.peer": "\(host)", "mesh.overlay": "\(overlay)"])
        } catch {
            logger.warning("cannot key the overlay peer", metadata: ["mesh.peer": "\(host)", "error": "\(error)"])
        }
    }

    /// The locations this host knows (its own ports' and learned ones), encoded for another agent
    /// of this domain. Locations behind hosts of another domain (`host@domain`, learned over a
    /// stretched link, §8.9) stay here: other hosts of this domain have no overlay to them.
    public func locationSnapshot() async -> [UInt8] {
        OverlayControlCodec.encode(await virtualSwitch.locationEntries().map(\.location).filter { !$0.host.rawValue.contains("@") })
    }

    /// Stops carrying stretched segments to every host of `domain` (its grant was revoked or
    /// expired, §8.9): their keys and locations are forgotten. Returns how many hosts.
    @discardableResult
    public func unlink(domain: String) async -> Int {
        let hosts = await virtualSwitch.stretchedPeers().filter { $0.rawValue.hasSuffix("@" + domain) }
        for host in hosts { await virtualSwitch.removePeer(host) }
        return hosts.count
    }

    /// The segment id of one of this host's networks (nil: not defined here).
    public nonisolated func segment(of network: String) -> SegmentID? { networks[network]?.segment }

    /// Keys the overlay with a host of another domain (`name`, `host@domain`) carrying `link`'s
    /// stretched segments, from a channel both share, and applies its own `locations`
    /// (Protocol.md §8.9).
    public func linkStretched(_ name: String, overlay: HostPort, session: ChannelSession, link: StretchedLink, locations: [MACLocation]) async throws {
        let address = try SocketAddress.makeAddressResolvingHost(overlay.host, port: overlay.port)
        try await virtualSwitch.setStretchedPeer(HostID(name), address: address, sharedSecret: session.exportKey(label: OverlayKeys.exportLabel),
                                                 algorithm: session.aead, link: link, locations: locations)
    }

    /// Locations another agent sent.
    public func apply(locations bytes: [UInt8]) async {
        do { await virtualSwitch.applyLocations(try OverlayControlCodec.decode(bytes)) } catch {
            logger.warning("dropped a malformed location update", metadata: ["error": "\(error)"])
        }
    }

    /// Hands every location change of this switch to `publish` (encoded) until cancelled.
    public nonisolated func publishLocations(_ publish: @escaping @Sendable ([UInt8]) async -> Void) async {
        for await event in virtualSwitch.events {
            switch event {
            case .publish(let locations): await publish(OverlayControlCodec.encode(locations))
            case .duplicateMAC, .macFrozen:
                logger.warning("virtual switch: MAC conflict", metadata: ["vswitch.event": "\(event)"])
            case .activationTimedOut(let port):
                // The guest runs here and nowhere else (it resumed after the commit), but neither
                // QEMU's RARP nor a gratuitous ARP came. A blocked port would cut it off for good,
                // and the source's copy is gone: activate it and claim the location.
                logger.warning("a migrated VM did not announce itself: activating its port anyway", metadata: [
                    "vswitch.port": "\(port)", "vswitch.timeout": "\(activationTimeout)"])
                do { try await virtualSwitch.activatePort(port) } catch {
                    logger.error("cannot activate the migrated VM's port: the guest is cut off from its network", metadata: [
                        "vswitch.port": "\(port)", "error": "\(error)"])
                }
            default:
                logger.debug("virtual switch event", metadata: ["vswitch.event": "\(event)"])
            }
        }
    }

    /// A peer is gone: forget its keys and locations.
    public func removePeer(_ host: String) async { await virtualSwitch.removePeer(HostID(host)) }
}

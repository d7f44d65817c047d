public import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshIdentity
import Migration
public import MeshWire
import SecureChannel

/// The pre-flight checklist (Protocol.md §6.9): `hostmesh migrate VM --to HOST --check`, and the
/// first step of every migration. The source checks the VM and writes a nonce beside each shared
/// disk; the destination checks its QEMU (machine type, CPU model), its room, the nonces and its
/// networks, and answers one item per check.
extension MigrationCoordinator {
    /// Whether a failed item refuses a migration before it begins: machine, CPU model, networks,
    /// shared disks, a VM paused by an operator. Capacity is advisory here: admission checks it again, atomically, as it
    /// reserves (and a busy destination makes a migration wait, not fail). The VM's state, its
    /// local disks and an unreachable destination are refused by the migration itself, with the
    /// same reasons.
    static func refuses(_ item: PreflightReport.Item) -> Bool {
        !item.ok && (["machine", "cpu-model", "network", "paused"].contains(item.name) || item.name.hasPrefix("shared-disk"))
    }

    /// Runs the checklist for moving `reference` to the agent at `address`. Never throws: what
    /// cannot be checked is a failed item, with the reason. `crossDomain`: the agent is a host of
    /// another, federated domain (§6.10): the questions go on a `cross-domain-migration` channel to
    /// it, and shared disks, which do not cross a domain boundary, fail their items here.
    public func preflight(_ reference: String, to address: HostPort, crossDomain: CrossDomainTarget? = nil) async -> PreflightReport {
        await preflight(reference, to: address, crossDomain: crossDomain, forMigration: nil).report
    }

    /// The checklist, and for a migration with `settings` the control channel it asked the
    /// destination on, left open for the prepare, with the stream's channels opened beside it when
    /// the migration carries one stream (§6.3, §6.9; nil when no channel answered).
    func preflight(_ reference: String, to address: HostPort, crossDomain: CrossDomainTarget? = nil,
                   forMigration settings: MigrationSettings?) async -> (report: PreflightReport, channel: CheckedControlChannel?) {
        var items: [PreflightReport.Item] = []
        var kept: CheckedControlChannel?
        // The stream's channels, once opened: the kept channel's, or closed with the report.
        var streams: PredialedChannels?
        func report() -> (report: PreflightReport, channel: CheckedControlChannel?) {
            if kept == nil { streams?.close() }
            return (PreflightReport(vm: reference, destination: "\(address)", items: items), kept)
        }
        let vm: RegisteredVM
        do { vm = try await vms.lookUp(reference) } catch {
            items.append(.init(name: "vm", ok: false, detail: "\(error)", fix: "`hostmesh vm list` shows this host's VMs"))
            return report()
        }
        guard let spec = vm.spec else {
            items.append(.init(name: "vm", ok: false, detail: "the spec of \(vm.name) does not decode", fix: "recreate the VM"))
            return report()
        }
        // A destination a checklist measured before: the stream's channels open now, their
        // handshakes beside the checklist's own rather than after them, so that they have time to
        // pad their windows open before QEMU's first byte (§6.3).
        let earlyStream = if let settings, crossDomain == nil, SourceRun.opensStreamEarly(spec, settings) { settings } else { MigrationSettings?.none }
        if let settings = earlyStream, let known = measuredDestination(address) {
            streams = openStream(to: address, peer: known.host, roundTrip: known.roundTripMicroseconds, acceptsFiller: known.acceptsFiller, settings: settings)
            logger.debug("migration stream channels opening as the migration starts", metadata: [
                "vm.ref": "\(reference)", "mesh.peer": "\(known.host)", "migration.rtt_us": "\(known.roundTripMicroseconds)",
                "migration.stream_opened": "at-start"])
        }
        // Empty until the running QEMU says what the spec's alias is: the destination then says it could not check.
        var machine = ""
        var cpuUnavailable: [String] = []
        if let hold = vm.hold {
            items.append(.init(name: "vm", ok: false, detail: "\(vm.name) is held: \(hold)", fix: "`hostmesh vm resolve \(vm.name)` shows the choices"))
        } else if let process = await vms.process(vm.id), await process.exitIfEnded() == nil {
            items.append(.init(name: "vm", ok: true, detail: "\(vm.name) runs here (epoch \(vm.epoch), \(spec.memoryMiB) MiB, \(spec.vcpus) vCPU)"))
            // Its own item, so that the other refusals still count. A status that does not read
            // passes here: taking the VM reads it again and fails closed.
            if (try? await process.qmp.queryStatus())?.status == .paused {
                items.append(.init(name: "paused", ok: false, detail: "\(vm.name) is paused (`hostmesh vm pause`); its destination would run it",
                                   fix: "`hostmesh vm resume \(vm.name)` first"))
            }
            do {
                let capabilities = try await runningCapabilities(process)
                machine = capabilities.resolve(machine: spec.machine) ?? ""
                cpuUnavailable = capabilities.cpuModels.first { $0.name == spec.cpuModel }?.unavailableFeatures ?? []
            } catch {
                items.append(.init(name: "machine", ok: false, detail: "cannot ask this host's QEMU what machine type \(spec.machine) is: \(error)",
                                   fix: "retry; if it persists, the VM's QMP socket is stuck: see its console log"))
            }
        } else {
            items.append(.init(name: "vm", ok: false, detail: "\(vm.name) is not running here; only a running VM can be live-migrated",
                               fix: "start it with `hostmesh vm start \(vm.name)`"))
        }
        var check = Hostmesh_V1_AgentEnvelope()
        do { check.migrationCheck.vmSpecJson = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self) } catch {
            items.append(.init(name: "vm", ok: false, detail: "the spec of \(vm.name) does not encode: \(error)", fix: "recreate the VM"))
            return report()
        }
        check.migrationCheck.machine = machine
        check.migrationCheck.cpuUnavailable = cpuUnavailable
        for (index, disk) in spec.disks.enumerated() where !disk.shared {
            do {
                let info = try await QEMUImageTool.info(disk.path)
                var image = Hostmesh_V1_DiskImage()
                image.index = UInt32(index)
                image.format = try info.checked(against: disk).rawValue
                image.virtualSize = info.virtualSize
                image.thin = info.thin
                image.allocatedBytes = info.allocatedBytes
                check.migrationCheck.disks.append(image)
            } catch {
                items.append(.init(name: "disk \(index)", ok: false, detail: "\(error)", fix: "fix the image at \(disk.path), or its spec"))
            }
        }
        var nonces: [SharedDiskNonce] = []
        defer { for nonce in nonces { nonce.remove() } }
        for (index, disk) in spec.disks.enumerated() where disk.shared {
            if crossDomain != nil {
                items.append(.init(name: "shared-disk \(index)", ok: false, detail: "\(disk.path) is on shared storage, which does not cross a domain boundary",
                                   fix: "move it to a local disk first (`hostmesh vm move-storage`), so it is mirrored into the other domain"))
                continue
            }
            do {
                let nonce = try SharedDiskNonce.write(beside: disk.path)
                nonces.append(nonce)
                var message = Hostmesh_V1_SharedDiskNonce()
                message.index = UInt32(index)
                message.noncePath = nonce.path
                message.nonce = Data(nonce.bytes)
                check.migrationCheck.sharedDisks.append(message)
            } catch {
                items.append(.init(name: "shared-disk \(index)", ok: false, detail: "cannot write a nonce beside \(disk.path) to prove it shared: \(error)",
                                   fix: "make \((disk.path as NSString).deletingLastPathComponent)/.hostmesh writable by the agent"))
            }
        }
        do {
            var control = SecureChannelConfiguration(credentials: context.credentials, handshakeTimeout: .seconds(5))
            control.policy.purpose = "control"
            if let crossDomain {
                control.policy.purpose = FederationGrant.migrationPurpose
                control.policy.targetDomain = crossDomain.anchor
                control.policy.requiredDomain = crossDomain.anchor.name
                control.policy.expectedPeer = crossDomain.host
            }
            // The check leaves with the handshake's last message (`early`), a round trip sooner; a
            // refusal of this host is then the error of the answer's read, below.
            let connection = try await HeldConnection.hold(
                SecureConnection.connect(host: address.host, port: address.port, configuration: control, logger: logger, early: true))
            let peer = connection.connection.peer.hostID
            let roundTrip = await OutgoingStreamTunnel.roundTrip(of: connection.connection.channel.channel)
            let acceptsFiller = connection.connection.session.peerAcceptsFiller
            if crossDomain == nil { measured(address, host: peer, roundTrip: roundTrip, acceptsFiller: acceptsFiller) }
            // Otherwise the stream's channels open now, their handshakes beside the check's answer
            // and the prepare's; they say nothing until QEMU connects, after admission. Ones opened
            // for a host that no longer answers at this address are closed (they would fail).
            if let opened = streams, opened.expectedPeer != peer {
                opened.close()
                streams = nil
            }
            if let settings = earlyStream, streams == nil {
                streams = openStream(to: address, peer: peer, roundTrip: roundTrip, acceptsFiller: acceptsFiller, settings: settings)
            }
            var reader = connection.reader()
            let answer: Hostmesh_V1_AgentEnvelope?
            do {
                try await connection.outbound.write(EnvelopeWriter.frame(check))
                answer = try await reader.next()
            } catch {
                // A refusal that arrived while the early check was on its way fails the write or
                // the read with a generic closed-channel error: the channel's own reason names it.
                let reason: any Error = if let refusal = await connection.connection.failureReason() { refusal } else { error }
                await connection.close()
                throw reason
            }
            guard case .migrationCheckResult(let result)? = answer?.body else {
                await connection.close()
                items.append(.init(name: "destination", ok: false, detail: "\(peer) did not answer the checklist (an agent without it closes the channel)",
                                   fix: "upgrade the agent on \(peer)"))
                return report()
            }
            items += result.items.map { .init(name: $0.name, ok: $0.ok, detail: $0.detail, fix: $0.fix.isEmpty ? nil : $0.fix) }
            if settings != nil {
                kept = CheckedControlChannel(.init(connection: connection, reader: reader, streams: streams))
            } else {
                await connection.close()
            }
        } catch {
            items.append(.init(name: "destination", ok: false, detail: "cannot ask the agent at \(address): \(error)",
                               fix: "check that its agent runs and this host reaches its channel port"))
        }
        return report()
    }

    /// Opens the channels of a migration's one stream to `peer` at `address` ahead of QEMU (§6.3):
    /// as many as `roundTrip` (microseconds) calls for, each padding its window open meanwhile,
    /// and sending filler after its message 1 first where `peer` said it `acceptsFiller` (§3.2).
    private func openStream(to address: HostPort, peer: String, roundTrip: UInt32, acceptsFiller: Bool, settings: MigrationSettings) -> PredialedChannels {
        var configuration = SecureChannelConfiguration(credentials: context.credentials)
        configuration.policy.expectedPeer = peer
        return PredialedChannels(ahead: SourceRun.stripes(settings, roundTrip: roundTrip), host: address.host, port: address.port,
                                 configuration: configuration, rttMicroseconds: roundTrip, rateBytesPerSecond: settings.linkBytesPerSecond,
                                 acceptsFiller: acceptsFiller, congestionControl: context.streamCongestionControl, logger: logger)
    }

    /// The destination's items for `check` from host `peer`: its QEMU, its room, the shared disks'
    /// nonces, its networks. Reserves nothing.
    public func checkIncoming(_ check: Hostmesh_V1_MigrationCheck, from peer: String) async -> Hostmesh_V1_AgentEnvelope {
        var reply = Hostmesh_V1_AgentEnvelope()
        func item(_ name: String, _ ok: Bool, _ detail: String, fix: String = "") {
            var item = Hostmesh_V1_CheckItem()
            item.name = name
            item.ok = ok
            item.detail = detail
            item.fix = fix
            reply.migrationCheckResult.items.append(item)
        }
        let given: VMSpec
        do { given = try JSONDecoder().decode(VMSpec.self, from: Data(check.vmSpecJson.utf8)) } catch {
            item("vm", false, "\(hostID) cannot read the VM's spec: \(error)", fix: "run the same hostmesh version on both hosts")
            return reply
        }
        do {
            let capabilities = try await qemuCapabilities()
            if check.machine.isEmpty {
                item("machine", false, "not checked: the source's QEMU did not say which machine type the VM runs as",
                     fix: "run the check while the VM runs on the source")
            } else if let refusal = capabilities.machineRefusal(check.machine) {
                item("machine", false, "\(hostID): \(refusal.problem)", fix: refusal.fix)
            } else {
                item("machine", true, "\(hostID)'s QEMU \(capabilities.version) has \(check.machine)")
            }
            if let refusal = capabilities.cpuRefusal(given.cpuModel, sourceUnavailable: check.cpuUnavailable) {
                item("cpu-model", false, "\(hostID): \(refusal.problem)", fix: refusal.fix)
            } else {
                item("cpu-model", true, "\(hostID) runs CPU model \(given.cpuModel) with every feature the source gives it")
            }
        } catch {
            item("machine", false, "\(hostID) cannot ask its QEMU (\(configuration.qemuBinary)) what it runs: \(error)",
                 fix: "install qemu-system-x86 on \(hostID), or set qemu_binary; if QEMU is installed but slow to answer, the host is overloaded: retry when it is less busy")
        }
        do {
            let (spec, diskBytes) = try localizeDisks(given, check.disks, migration: "preflight", storageRoot: vms.storageRoot)
            let busy = isAtIncomingLimit(diskBytes: diskBytes)
            if let refusal = admissionRefusal(spec, diskBytes: diskBytes) {
                if busy {
                    item("capacity", true, "\(refusal) now: the migration would wait and ask again (or be refused with --no-queue)")
                } else {
                    item("capacity", false, refusal, fix: "free memory or disk space on \(hostID), or choose another destination (--auto picks one with room)")
                }
            } else {
                let disks = diskBytes > 0 ? String(format: " and %.1f GB for its disks", Double(diskBytes) / 1e9) : ""
                item("capacity", true, "\(hostID) has room for \(spec.memoryMiB + 64) MiB\(disks)")
            }
        } catch {
            item("capacity", false, "\(error)", fix: "run the same hostmesh version on both hosts")
        }
        for nonce in check.sharedDisks {
            let index = Int(nonce.index)
            guard given.disks.indices.contains(index), given.disks[index].shared else {
                item("shared-disk \(index)", false, "the VM has no shared disk \(index)", fix: "run the same hostmesh version on both hosts")
                continue
            }
            let path = given.disks[index].path
            switch SharedDiskNonce.verify(path: nonce.noncePath, beside: path, expected: [UInt8](nonce.nonce)) {
            case .same:
                item("shared-disk \(index)", true, "\(path) is the same file on \(hostID) (it reads the nonce the source just wrote beside it)")
            case .differs(let why):
                item("shared-disk \(index)", false, "\(path) on \(hostID) is not the source's file: \(why)",
                     fix: "mount the same shared storage at the same path on both hosts, or create the VM without --shared-storage so its disk is copied")
            }
        }
        if let ports = context.ports {
            do {
                try await ports.checkNetworks(given)
                let names = Set(given.nics.compactMap(\.network)).sorted()
                item("network", true, names.isEmpty ? "the VM has no switched NIC" : "\(hostID) has network \(names.joined(separator: ", "))")
            } catch {
                item("network", false, "\(hostID): \(error)", fix: "define the VM's networks on \(hostID) ([networks] in its configuration, same segment ids)")
            }
        }
        return reply
    }

    /// What the QEMU running `process` can run, asked once per binary, version and accelerator
    /// and kept: the same binary at the same version with the same accelerator answers the same
    /// (`query-cpu-definitions` alone takes 10-20 ms of a TCG QEMU's main loop per checklist).
    func runningCapabilities(_ process: VMProcess) async throws -> QEMUCapabilities {
        let greeting = process.qmp.greeting
        let key = "\(process.record.binary)|\(greeting.version)|\(greeting.package)|\(process.record.accelerator.choice.rawValue)"
        if let known = runningQEMUCapabilities[key] { return known }
        let asked = try await QEMUCapabilities.query(process.qmp)
        // Two checklists at once may both ask: they get the same answer, kept once.
        runningQEMUCapabilities[key] = asked
        return asked
    }

    /// This host's QEMU capabilities, probed once (about 0.2 s) and kept. Checklists that come
    /// while the probe runs wait for the same probe; a failed probe is forgotten, so the next
    /// checklist probes again (QEMU installed, or the host less busy, by then).
    func qemuCapabilities() async throws -> QEMUCapabilities {
        let probe: Task<QEMUCapabilities, any Error>
        if let running = capabilityProbe {
            probe = running
        } else {
            let binary = configuration.qemuBinary, logger = logger
            probe = Task { try await QEMUCapabilities.probe(binary: binary, logger: logger) }
            capabilityProbe = probe
        }
        do { return try await probe.value } catch {
            if capabilityProbe == probe { capabilityProbe = nil }
            throw error
        }
    }
}

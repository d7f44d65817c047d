import Agent
import ControlAPI
import Foundation
import Logging
import MeshIdentity
import MeshWire
import SecureChannel
import Testing

/// Issue 10 item 5 with real agents (Protocol.md §6.12): a certified member that signs and sends
/// a forged ownership record with a higher epoch and no valid evidence fences nothing; the
/// owner's guest keeps running and the drop is counted. The same channel with the owner's own
/// signed handover statement does fence, so the refusal is the evidence's, not the channel's.
extension MigrationEndToEndTests {
    /// Sends `records` to `agent` as host `directory` (its key and certificate) on a channel of its own.
    func sendOwnership(_ records: [Hostmesh_V1_OwnershipRecord], to agent: AgentProcess, as directory: String) async throws {
        let credentials = ChannelCredentials(identity: try HostIdentity.load(fromDirectory: directory),
                                             certificate: try HostCertificate.load(directory + "/host.cert"),
                                             trust: try TrustStore.load(fromDirectory: directory + "/trust"))
        let connection = try await SecureConnection.connect(host: agent.host, port: agent.port,
                                                            configuration: SecureChannelConfiguration(credentials: credentials), logger: Logger(label: "test"))
        var update = Hostmesh_V1_AgentEnvelope()
        update.ownershipUpdate.records = records
        _ = try await connection.request(update, expectAnswer: false)
    }

    func record(_ vm: String, owner: String, epoch: UInt64, evidence: [OwnershipEvidence] = []) -> Hostmesh_V1_OwnershipRecord {
        var record = Hostmesh_V1_OwnershipRecord()
        record.vmID = vm
        record.owner = owner
        record.epoch = epoch
        record.evidence = evidence.map(\.wire)
        return record
    }

    /// The value of `series` (name and labels, exactly as printed) on `agent`'s metrics page, 0 when absent.
    func metric(_ agent: AgentProcess, _ series: String) async throws -> Double {
        let page = try await httpGet("http://" + (try PrometheusScrapeTests().metricsAddress(agent)) + "/metrics")
        let line = page.split(separator: "\n").first { $0.hasPrefix(series + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    @Test func aForgedOwnershipRecordWithAHigherEpochButNoValidEvidenceFencesNothing() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: ["--metrics-listen", "127.0.0.1:0"])
        // node-c is a certified member of the domain: the "compromised" host. It needs no agent to sign and send.
        let c = try mesh.host("node-c")
        let vm = spec("victim")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        let (boot, before) = try await heartbeat(a, "victim", after: 1)

        // 1. A higher epoch with no evidence at all.
        try await sendOwnership([record(vm.id, owner: "node-c", epoch: 9)], to: a, as: c)
        // 2. A handover to node-b that node-c signs in node-a's name (with its own key and certificate).
        let cIdentity = try HostIdentity.load(fromDirectory: c)
        let cCertificate = try HostCertificate.load(c + "/host.cert")
        let genuine = try HandoverStatement.sign(vm: vm.id, epoch: 1, to: "node-b", migration: "forged", at: Int64(Date().timeIntervalSince1970),
                                                 identity: cIdentity, certificate: cCertificate)
        var body = genuine.body
        body.fromHost = "node-a"
        let bytes: [UInt8] = try body.serializedBytes()
        var wire = Hostmesh_V1_TrustHandoverStatement()
        wire.body = Data(bytes)
        wire.signature = Data(cIdentity.signingKey.sign(HandoverStatement.signatureContext + bytes))
        wire.certificate = Data(cCertificate.serialized)
        let inANamesName = try HandoverStatement(serialized: try wire.serializedBytes())
        try await sendOwnership([record(vm.id, owner: "node-b", epoch: 2, evidence: [.handover(inANamesName)])], to: a, as: c)

        // Both dropped and counted, each with its reason; nothing fenced, nothing kept.
        let deadline = ContinuousClock.now + .seconds(15)
        var none = 0.0, refused = 0.0
        while ContinuousClock.now < deadline {
            none = try await metric(a, #"hostmesh_ownership_records_dropped_total{reason="no_evidence"}"#)
            refused = try await metric(a, #"hostmesh_ownership_records_dropped_total{reason="evidence_refused"}"#)
            if none >= 1 && refused >= 1 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(none == 1 && refused == 1, "dropped: no evidence \(none), refused \(refused)\n\(a.log.suffix(3000))")
        // Logged just after the count: waited for, bounded.
        _ = await a.logged("carries no evidence", "carries the certificate of node-c")
        #expect(a.log.contains("carries no evidence") && a.log.contains("carries the certificate of node-c"))
        let (bootAfter, after) = try await heartbeat(a, "victim", after: before)
        #expect(bootAfter == boot && after > before)
        let listed = try #require(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).first)
        #expect(listed.state == "running" && listed.problem == nil, "\(listed)")
        #expect(try await ownership(a).filter { $0.vm == vm.id } == [ControlTypes.Ownership(vm: vm.id, owner: "node-a", epoch: 1)])

        // The control: node-a's own signed handover to node-c at epoch 2, on the same kind of
        // channel from the same member, fences node-a's copy.
        let aDirectory = mesh.root + "/node-a"
        let signed = try HandoverStatement.sign(vm: vm.id, epoch: 1, to: "node-c", migration: "real", at: Int64(Date().timeIntervalSince1970),
                                                identity: try HostIdentity.load(fromDirectory: aDirectory),
                                                certificate: try HostCertificate.load(aDirectory + "/host.cert"))
        try await sendOwnership([record(vm.id, owner: "node-c", epoch: 2, evidence: [.handover(signed)])], to: a, as: c)
        try await awaitOwner(a, vm: vm.id, owner: "node-c", epoch: 2)
        let fenced = try #require(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).first)
        #expect(fenced.problem?.contains("stale") == true, "\(fenced)")
        // An operator's `vm resume` never runs a fenced copy (nor does `vm pause` touch it).
        for method in ["vm.resume", "vm.pause"] {
            do {
                _ = try await a.control.call(method, ControlTypes.VMReference(vm: vm.name), as: VMInfo.self)
                Issue.record("\(method) of a fenced copy was accepted")
            } catch let error as ControlError {
                #expect(error.code == "conflict" && error.message.contains("held"), "\(method): \(error)")
            }
        }
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).first?.qemuStatus == "paused")
        #expect(try await metric(a, #"hostmesh_ownership_records_dropped_total{reason="no_evidence"}"#) == 1)
    }
}

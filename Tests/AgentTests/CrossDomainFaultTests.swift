import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Rows of the fault matrix across a domain boundary (Protocol.md §6.5, §6.10): either agent
/// SIGKILLed, either QEMU SIGKILLed, or the control channel cut, at the handover's key phases of a migration from lab's
/// `node-1` into prod's `node-1`. The guest ends on exactly one host, at the epoch the row says,
/// both domains agree, and its heartbeat never goes back. (The kills at the commit itself are
/// `aCrossDomainHandoverSurvivesAnAgentKilledAtItsCommit`.)
extension MigrationEndToEndTests {
    enum CrossDomainFault: String, Sendable, CustomTestStringConvertible {
        case killSource = "SIGKILL lab agent"
        case killDestination = "SIGKILL prod agent"
        case killSourceQEMU = "SIGKILL lab QEMU"
        case killDestinationQEMU = "SIGKILL prod QEMU"
        case cut = "cut connection"
        var testDescription: String { rawValue }
    }

    struct CrossDomainRow: Sendable, CustomTestStringConvertible {
        let fault: CrossDomainFault
        let phase: String
        /// True: the guest ends in prod (epoch 2); false: back in lab at `labEpoch`.
        let inProd: Bool
        let labEpoch: UInt64
        var testDescription: String { "\(fault.rawValue) at \(phase)" }
    }

    static let crossDomainRows: [CrossDomainRow] = [
        CrossDomainRow(fault: .killSource, phase: "source:transferring", inProd: false, labEpoch: 1),
        CrossDomainRow(fault: .killDestination, phase: "destination:admitted", inProd: false, labEpoch: 1),
        CrossDomainRow(fault: .cut, phase: "source:committing", inProd: false, labEpoch: 3),
        CrossDomainRow(fault: .cut, phase: "destination:committed", inProd: true, labEpoch: 2),
        // The transfer is complete and the source paused: the destination's QEMU holds the whole
        // guest, so it lives on in prod; without it the source keeps the guest, one epoch past
        // the commit it never made (as inside a domain, FaultInjectionTests' matrix).
        CrossDomainRow(fault: .killSourceQEMU, phase: "source:committing", inProd: true, labEpoch: 2),
        CrossDomainRow(fault: .killDestinationQEMU, phase: "source:committing", inProd: false, labEpoch: 3),
    ]

    @Test(arguments: crossDomainRows)
    func aCrossDomainMigrationKeepsOneCopyThroughAFault(_ row: CrossDomainRow) async throws {
        let sourceSide = row.phase.hasPrefix("source:")
        let hook = [row.fault == .cut ? "HOSTMESH_TEST_CUT_AT" : "HOSTMESH_TEST_PAUSE_AT": row.phase]
        let f = try await federation(lab: sourceSide ? hook : [:], prod: sourceSide ? [:] : hook)
        defer { f.mesh.tearDown() }
        try await f.grant(f.mesh.domain, on: f.lab, f.terms(for: f.prod))
        try await f.grant(f.prod, on: f.prodHost, f.terms(for: f.mesh.domain))
        let vm = crossingSpec("faulty", mac: "52:54:00:aa:00:0\(Self.crossDomainRows.firstIndex { $0.testDescription == row.testDescription } ?? 0)", labels: nil)
        _ = try await f.lab.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        let (boot, before) = try await heartbeat(f.lab, "faulty", after: 1)
        let fed = f
        let migration = Task { try await fed.move("faulty", from: fed.lab, into: "prod", via: fed.prodHost) }
        var lab = f.lab, prodHost = f.prodHost
        switch row.fault {
        case .killSource:
            try await awaitPause(lab, at: row.phase)
            lab.kill()
            _ = await migration.result
            lab = try await f.mesh.start("node-1", arguments: ["--listen", lab.address])
        case .killDestination:
            try await awaitPause(prodHost, at: row.phase)
            prodHost.kill()
            _ = await migration.result
            prodHost = try await f.mesh.start("node-1", of: f.prod, directory: "prod-node-1", arguments: ["--listen", prodHost.address])
        case .killSourceQEMU, .killDestinationQEMU:
            let (paused, victim) = (row.phase.hasPrefix("source:") ? lab : prodHost, row.fault == .killSourceQEMU ? lab : prodHost)
            try await awaitPause(paused, at: row.phase)
            let found = pids(ofProcessesMentioning: victim.stateDirectory + "/vms/")
            #expect(found.count == 1, "\(row.testDescription): expected one QEMU on \(victim.hostID), found \(found)")
            for pid in found { kill(pid, SIGKILL) }
            _ = FileManager.default.createFile(atPath: paused.stateDirectory + "/test-continue", contents: Data())
            _ = await migration.result
        case .cut:
            _ = await migration.result
        }
        let context = row.testDescription
        if row.inProd {
            try await awaitSettled(vm: "faulty", running: prodHost, absent: lab, context: context)
            try await awaitOwner(lab, vm: vm.id, owner: "node-1@prod", epoch: 2)
            let tombstones = try await lab.control.call("tombstones", Empty(), as: [ControlTypes.Tombstone].self)
            #expect(tombstones.map(\.vm) == [vm.id], "\(context): \(tombstones)")
        } else {
            try await awaitSettled(vm: "faulty", running: lab, absent: prodHost, context: context)
            try await awaitOwner(lab, vm: vm.id, owner: "node-1", epoch: row.labEpoch)
            #expect(try await lab.control.call("tombstones", Empty(), as: [ControlTypes.Tombstone].self).isEmpty, "\(context)")
        }
        let (bootAfter, after) = try await heartbeat(row.inProd ? prodHost : lab, "faulty", after: before)
        #expect(bootAfter == boot && after > before, "\(context): the guest rebooted or its heartbeat went back")
    }
}

@testable import Agent
import Foundation
import GRDB
import Hypervisor
import Logging
import MeshWire
import Testing

/// What restart elsewhere (Protocol.md §9.2) takes as given: a spec file whose disks' leases are
/// where the owner's lease was watched, and VM ids from the wire that are safe in file names.
@Suite struct TakeoverInputTests {
    let boot = VMSpec.Boot.kernel(path: "/k", initrd: nil, commandLine: "")

    @Test func aSpecWhoseDisksLeaseElsewhereIsNotTakenOver() throws {
        let watched = LeaseFiles(directory: "/mnt/shared/a/.hostmesh")
        let here = VMSpec(id: "vm1", name: "db", memoryMiB: 64, disks: [.init(path: "/mnt/shared/a/db.raw", format: .raw, shared: true)], boot: boot)
        try TakeoverSupervisor.checkLeaseDirectory(here, watched: watched, vm: "vm1")
        let elsewhere = VMSpec(id: "vm1", name: "db", memoryMiB: 64, disks: [.init(path: "/mnt/shared/b/db.raw", format: .raw, shared: true)], boot: boot)
        do {
            try TakeoverSupervisor.checkLeaseDirectory(elsewhere, watched: watched, vm: "vm1")
            Issue.record("a spec whose disks lease in another directory passed")
        } catch let refusal as TakeoverRefusal {
            #expect(refusal.description.contains("/mnt/shared/b/.hostmesh"), "\(refusal)")
        }
        let local = VMSpec(id: "vm1", name: "db", memoryMiB: 64, disks: [.init(path: "/mnt/shared/a/db.raw", format: .raw, shared: false)], boot: boot)
        #expect(throws: TakeoverRefusal.self) { try TakeoverSupervisor.checkLeaseDirectory(local, watched: watched, vm: "vm1") }
    }

    @Test func aRecordWhoseVMIdIsNotAnIdIsNotKeptNorWatched() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("hm-takeover-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        let store = try AgentStore(stateDirectory: state)
        let ledger = OwnershipLedger(store: store, hostID: "node-b", logger: Logger(label: "test"))
        func record(_ vm: String) -> Hostmesh_V1_OwnershipRecord {
            var r = Hostmesh_V1_OwnershipRecord()
            r.vmID = vm
            r.owner = "node-a"
            r.epoch = 3
            r.leaseDirectory = "/mnt/shared/a/.hostmesh"
            return r
        }
        let good = "0b7c5e1e-7d3f-4c1e-9a55-0d2f5b1c9e01"
        _ = try await ledger.apply([record("../../etc/x"), record("a/b"), record(""), record("vm.1"), record(good)], from: "node-a")
        let kept = try await store.database.read { db in try StoredOwnership.fetchAll(db).map(\.vmId) }
        #expect(kept == [good])
    }
}

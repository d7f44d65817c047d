@testable import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Protocol.md §6.10.1 with real agent processes: a tombstone held by two agents of one domain
/// (one of them learned it in the hello exchange), removed on one by `hostmesh domain federation
/// tombstones remove`, is gone on the other too, and the other then lets a new VM have its MAC.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct TombstoneRemovalProcessTests {
    let mac = "52:54:00:7a:0b:01"

    func tombstones(_ agent: AgentProcess) async throws -> [ControlTypes.Tombstone] {
        try await agent.control.call("tombstones", Empty(), as: [ControlTypes.Tombstone].self)
    }

    func eventually(_ what: String, _ check: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if try await check() { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("not within 30 s: \(what)")
        throw ControlError.failed(what)
    }

    func newVM(_ name: String) -> VMSpec {
        VMSpec(id: UUID().uuidString.lowercased(), name: name, memoryMiB: 64,
               nics: [VMSpec.NIC(id: "n0", mac: mac, attachment: .none)],
               boot: .kernel(path: TestGuest.kernel, initrd: TestGuest.initrd, commandLine: "console=ttyS0 quiet"), accelerator: .tcg)
    }

    @Test func aTombstoneRemovedOnOneHostIsGoneOnTheOtherAndItsMACIsFree() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        // node-1 holds the tombstone of a VM that left (as if it had left from node-1) before it starts.
        let dir = try mesh.host("node-1")
        do {
            let store = try AgentStore(stateDirectory: dir)
            let gone = ControlTypes.Tombstone(vm: "vm-gone", name: "gone", macs: [mac], domain: "prod", owner: "node-9@prod", epoch: 3, at: 1)
            _ = try await store.database.write { db in try TombstoneStore.learn(db, [gone]) }
        }
        let a = try await mesh.start("node-1")
        let b = try await mesh.start("node-2", arguments: ["--join", a.address])
        try await eventually("node-2 learns the tombstone from node-1") { try await tombstones(b).map(\.vm) == ["vm-gone"] }
        // While it stands, node-2 refuses its MAC.
        do {
            _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: newVM("early"), start: false), as: VMInfo.self)
            Issue.record("a VM got the MAC of a VM that left")
        } catch let error as ControlError {
            #expect(error.message.contains("MAC \(mac)") && error.message.contains("gone"), "\(error)")
        }
        // An unknown VM is refused, naming the list to pick from.
        do {
            _ = try await CLI.run(["domain", "federation", "tombstones", "remove", "nothing"], a)
            Issue.record("the tombstone of an unknown VM was removed")
        } catch let error as ControlError {
            #expect(error.message.contains("domain federation tombstones"), "\(error)")
        }
        let removed = try await CLI.json(["domain", "federation", "tombstones", "remove", "gone"], a)
        #expect(removed["vm"] as? String == "vm-gone" && removed["removed"] as? Bool == true)
        #expect(try await tombstones(a).isEmpty)
        try await eventually("node-2 hears the removal") { try await tombstones(b).isEmpty }
        // A host that joins later, through node-2, hears the marker: the tombstone does not come back.
        let c = try await mesh.start("node-3", arguments: ["--join", b.address])
        try await eventually("node-3 joins") {
            ((try? await c.control.call("members", Empty(), as: [MemberRow].self)) ?? []).count == 3
        }
        let onA = try await tombstones(a), onC = try await tombstones(c)
        #expect(onA.isEmpty && onC.isEmpty, "node-1: \(onA.map(\.vm)), node-3: \(onC.map(\.vm))")
        // node-2 now lets a new VM have the MAC.
        let info = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: newVM("reuse"), start: false), as: VMInfo.self)
        #expect(info.name == "reuse")
    }
}

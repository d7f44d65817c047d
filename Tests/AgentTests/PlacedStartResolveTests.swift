import Agent
import ControlAPI
import Foundation
import Hypervisor
import Placement
import Synchronization
import Testing

/// `vm resolve` of a placed start whose handover got no answer (Protocol.md §10.12), with real
/// agents: node-a (the owner, in maintenance so that node-b is the only choice) offers a VM to
/// node-b, which is killed at a chosen point of receiving it (the fault hooks' pause, then
/// SIGKILL), so the offer is in doubt and node-a's row held. Asked afterwards, node-b says what
/// became of the offer: not stored there, it refuses it from then on and node-a takes the VM
/// back; stored there, node-a drops its held row. A node-b that does not answer is never presumed
/// to have refused: the VM is taken back without its answer only once membership declares it dead.
@Suite(.serialized, .timeLimit(.minutes(5)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct PlacedStartResolveTests {
    struct MemberRow: Decodable { var host: String; var status: String }

    @Test func anUnansweredHandoverIsSettledByAskingTheCandidateAndNeverPresumed() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let hooks = ["HOSTMESH_TEST_PAUSE_AT": "file"]
        let a = try await mesh.start("node-a", arguments: DRSEndToEndTests.drs)
        var b = try await mesh.start("node-b", arguments: ["--join", a.address] + DRSEndToEndTests.drs, environment: hooks)
        for name in ["v1", "v2", "v3"] {
            _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: DRSEndToEndTests.spec(name), start: false), as: VMInfo.self)
        }
        _ = try await a.control.call("host.maintenance", DRSTypes.Maintenance(action: .enter), as: DRSTypes.MaintenanceStatus.self)
        try await DRSEndToEndTests.waitUntil(30, "node-a in maintenance and node-b available, as node-a sees them") {
            let hosts = try await a.control.call("drs.status", Empty(), as: DRSTypes.Status.self).hosts
            return Dictionary(uniqueKeysWithValues: hosts.map { ($0.host, $0.state) }) == ["node-a": "evacuating", "node-b": "available"]
        }

        func vm(_ name: String, on agent: AgentProcess) async throws -> VMInfo? {
            try await agent.control.call("vm.list", Empty(), as: [VMInfo].self).first { $0.name == name }
        }
        /// Starts `name` placed from node-a, kills node-b once it reached `point` of receiving it,
        /// and returns the failed call's error. A start refused before anything was offered (the
        /// VM's epoch unchanged: node-b was not eligible at that moment, as a loaded host's
        /// membership may briefly say) is asked again, twice at most; any other end before the
        /// pause fails the test with the outcome and node-a's log.
        func offerKilledAt(_ point: String, _ name: String) async throws -> ControlError {
            try point.write(toFile: b.stateDirectory + "/test-pause-at", atomically: true, encoding: .utf8)
            var call: Task<DRSTypes.Placed, any Error>
            var attempt = 0
            while true {
                attempt += 1
                let epoch = try #require(try await vm(name, on: a)).epoch
                let ended = Mutex<String?>(nil)
                call = Task {
                    do {
                        let placed = try await a.control.call("vm.startPlaced", ControlTypes.VMReference(vm: name), as: DRSTypes.Placed.self)
                        ended.withLock { $0 = "placed: \(placed)" }
                        return placed
                    } catch {
                        let text = (error as? ControlError).map { "\($0.code): \($0.message)" } ?? "\(error)"
                        ended.withLock { $0 = text }
                        throw error
                    }
                }
                try await DRSEndToEndTests.waitUntil(30, "node-b paused at \(point)", log: Substring("node-b:\n\(b.log.suffix(2000))\nnode-a:\n\(a.log.suffix(4000))")) {
                    FileManager.default.fileExists(atPath: b.stateDirectory + "/test-paused-at") || ended.withLock { $0 != nil }
                }
                guard let outcome = ended.withLock({ $0 }), !FileManager.default.fileExists(atPath: b.stateDirectory + "/test-paused-at") else { break }
                let unchanged = try await vm(name, on: a)?.epoch == epoch
                guard attempt < 3, unchanged, outcome.hasPrefix("unavailable:") else {
                    throw ControlError.failed("the placed start of \(name) ended before node-b paused at \(point) (attempt \(attempt), epoch "
                                              + "\(unchanged ? "unchanged" : "moved")): \(outcome)\nnode-a:\n\(a.log.suffix(6000))")
                }
                print("PlacedStartResolveTests: the placed start of \(name) was refused before any offer (attempt \(attempt)), asked again: \(outcome)")
                try await Task.sleep(for: .seconds(1))
            }
            b.kill()
            for file in ["test-pause-at", "test-paused-at"] { try FileManager.default.removeItem(atPath: b.stateDirectory + "/" + file) }
            do {
                let placed = try await call.value
                Issue.record("the placed start succeeded although node-b was killed: \(placed)")
                return ControlError.failed("no error")
            } catch let error as ControlError { return error }
        }
        func resolve(_ vm: String, _ action: ControlTypes.Resolve.Action? = nil, fenced: Bool? = nil) async throws -> String {
            try await a.control.call("vm.resolve", ControlTypes.Resolve(vm: vm, action: action, destinationFenced: fenced), as: ControlTypes.Text.self).text
        }
        func restartB() async throws {
            b = try await mesh.restart(b, arguments: ["--join", a.address] + DRSEndToEndTests.drs, environment: hooks)
            try await DRSEndToEndTests.waitUntil(30, "node-b alive again for node-a") {
                try await a.control.call("members", Empty(), as: [MemberRow].self).first { $0.host == "node-b" }?.status == "alive"
            }
        }
        // 1. Killed before storing anything: node-b refuses the offer from now on; node-a takes v1 back above it.
        let inDoubt = try await offerKilledAt("placed-start:received", "v1")
        #expect(inDoubt.code == "unavailable" && inDoubt.message.contains("no answer from node-b"), "\(inDoubt)")
        await #expect { _ = try await a.control.call("vm.startPlaced", ControlTypes.VMReference(vm: "v1"), as: DRSTypes.Placed.self) }
            throws: { "\($0)".contains("v1 is held: handed over to node-b at epoch 2") }
        #expect(try await resolve("v1").contains("offered to node-b at epoch 2"))
        try await restartB()
        let settled = try await resolve("v1", .retry)
        #expect(settled.contains("node-b did not take v1") && settled.contains("epoch 3"), "\(settled)")
        #expect(try await vm("v1", on: a)?.epoch == 3)
        #expect(try await vm("v1", on: b) == nil)
        // node-b keeps node-a's claim at the epoch offered: the offer, arriving late, is refused there.
        let v1 = try #require(try await vm("v1", on: a))
        let fence = try await b.control.call("ownership", Empty(), as: [ControlTypes.Ownership].self).first { $0.vm == v1.id }
        #expect(fence?.owner == "node-a" && (fence?.epoch ?? 0) >= 2, "\(String(describing: fence))")
        // Settled: nothing left to resolve, and asking again changes nothing.
        #expect(try await resolve("v1", .retry).contains("no handover in doubt"))

        // 2. Killed after storing v2: the offer took effect there, so node-a drops its held row.
        _ = try await offerKilledAt("placed-start:stored", "v2")
        try await restartB()
        let dropped = try await resolve("v2", .retry)
        #expect(dropped.contains("the held row here is dropped; the VM is node-b's") || dropped.contains("the stale copy's row is dropped here; the VM is node-b's"),
                "\(dropped)")
        #expect(try await vm("v2", on: a) == nil)
        #expect(try await vm("v2", on: b)?.epoch == 2)

        // 3. node-b stays down: not presumed. Refused while membership does not declare it dead, then taken back.
        _ = try await offerKilledAt("placed-start:received", "v3")
        await #expect { _ = try await resolve("v3", .retry) } throws: { ($0 as? ControlError)?.code == "unavailable" && "\($0)".contains("does not answer") }
        await #expect { _ = try await resolve("v3", .resumeHere, fenced: true) } throws: { "\($0)".contains("not declared dead") }
        #expect(try await vm("v3", on: a)?.epoch == 1)
        try await DRSEndToEndTests.waitUntil(90, "node-b declared dead by node-a") {
            try await a.control.call("members", Empty(), as: [MemberRow].self).first { $0.host == "node-b" }?.status == "dead"
        }
        let forced = try await resolve("v3", .resumeHere, fenced: true)
        #expect(forced.contains("taken back at epoch 3"), "\(forced)")
        #expect(try await vm("v3", on: a)?.epoch == 3)
    }
}

@testable import Agent
import ControlAPI
import Membership
import MeshTime
import MeshWire
import Placement
import Testing

@Suite struct DRSViewTests {
    func member(_ id: String, status: MemberStatus = .alive, maintenance: Bool = false, health: MemberMetadata.Health = .ok) -> Member {
        Member(id: MemberID(id), address: PeerAddress(host: "10.0.0.1", port: 7948), status: status, incarnation: 0,
               metadata: MemberMetadata(version: 1, domain: "lab", cores: 4, memoryTotalBytes: 16 << 30, memoryFreeBytes: 12 << 30,
                                        cpuLoadMilli: 100, migrationsInFlight: 1, health: health, maintenance: maintenance,
                                        channelAddress: PeerAddress(host: "10.0.0.1", port: 7946)),
               statusChangedAt: MeshInstant(nanosecondsSinceOrigin: 0))
    }

    func load(_ host: String, _ vms: [(String, UInt32, Int64, Bool)]) -> Hostmesh_V1_DrsHostLoad {
        var load = Hostmesh_V1_DrsHostLoad()
        load.hostID = host
        load.sequence = 1
        load.vms = vms.map { id, cpu, held, busy in
            var vm = Hostmesh_V1_DrsVmLoad()
            vm.vmID = id
            vm.name = id
            vm.cpuMilli = cpu
            vm.memoryMib = 512
            vm.heldUntilUnix = held
            vm.busy = busy
            return vm
        }
        return load
    }

    @Test func viewFromMembersAndLoadReports() {
        let members = [member("a"), member("b"), member("c", status: .dead), member("d"), member("e", health: .degraded)]
        let loads = ["a": load("a", [("x", 800, 0, false), ("held", 100, 2_000, false), ("dup", 100, 0, false)]),
                     "b": load("b", [("dup", 100, 0, false)]), "c": load("c", [("gone", 900, 0, false)]), "e": load("e", [])]
        let view = DRSViewBuilder.input(members: members, loads: loads, rules: [], maintenance: ["b"], domain: "lab", nowUnix: 1_000)
        let hosts = Dictionary(uniqueKeysWithValues: view.hosts.map { ($0.id, $0.availability) })
        #expect(hosts == ["a": .available, "b": .evacuating, "c": .unavailable("dead"), "d": .unavailable("no DRS load report yet"),
                          "e": .unavailable("degraded")])
        #expect(view.hosts.first { $0.id == "a" }?.cpuCapacityMilli == 4000)
        #expect(view.hosts.first { $0.id == "a" }?.memoryCapacityMiB == 16_384 - 512)
        // The dead host's VMs are unknown; a VM two hosts report is busy on both; a held VM is not movable.
        #expect(Set(view.vms.map(\.id)) == ["x", "held", "dup"])
        #expect(view.vms.filter { $0.id == "dup" }.allSatisfy { $0.busy && !$0.movable })
        #expect(view.vms.first { $0.id == "held" }?.movable == false && view.vms.first { $0.id == "x" }?.movable == true)
        #expect(DRSViewBuilder.migrationsInFlight(members) == 4) // alive members only
    }

    @Test func recordsSurviveTheirProtobufFormAndNonsenseIsIgnored() {
        let rule = PlacementRule(name: "r", kind: .notOn, vms: ["x"], hosts: ["a"], must: false)
        let records: [DRSRecord] = [
            DRSRecord(key: "rule/r", version: 3, writer: "b", body: .rule(rule)),
            DRSRecord(key: "settings", version: 1, writer: "a", body: .settings(DRSSettings(automation: .full, threshold: 4))),
            DRSRecord(key: "maintenance/a", version: 2, writer: "c", body: .maintenance(MaintenanceRequest(active: true, since: 42))),
            DRSRecord(key: "rule/old", version: 5, writer: "a", body: nil),
        ]
        for record in records { #expect(DRSRecordCoding.record(DRSRecordCoding.wire(record)) == record) }
        var mismatched = DRSRecordCoding.wire(records[0])
        mismatched.key = "rule/other"
        #expect(DRSRecordCoding.record(mismatched) == nil)
        var badThreshold = DRSRecordCoding.wire(records[1])
        badThreshold.settings.threshold = 9
        #expect(DRSRecordCoding.record(badThreshold) == nil)
        var unknownKind = DRSRecordCoding.wire(records[0])
        unknownKind.rule.kind = "near"
        #expect(DRSRecordCoding.record(unknownKind) == nil)
    }

    @Test func maintenanceReportSaysReadyOnlyWhenTheHostReportedNoVM() {
        let hosts = [PlacementHost(id: "a", cpuCapacityMilli: 4000, memoryCapacityMiB: 16_000, availability: .evacuating),
                     PlacementHost(id: "b", cpuCapacityMilli: 4000, memoryCapacityMiB: 16_000)]
        let request = MaintenanceRequest(active: true, since: 7)
        let busy = PlacementVM(id: "v", name: "v", host: "a", cpuDemandMilli: 100, memoryMiB: 512, movable: false, busy: true)
        let evacuating = PlacementInput(hosts: hosts, vms: [busy])
        let plan = Placement.plan(evacuating, tolerance: BalanceTolerance(threshold: 3), maxMoves: 4)
        let moving = MaintenanceReport.status(of: "a", request: request, view: evacuating, plan: plan)
        #expect(moving.state == "evacuating" && moving.remaining == ["v"] && moving.moving == ["v"] && moving.since == 7)
        let empty = PlacementInput(hosts: hosts, vms: [])
        let emptyPlan = Placement.plan(empty, tolerance: BalanceTolerance(threshold: 3), maxMoves: 4)
        #expect(MaintenanceReport.status(of: "a", request: request, view: empty, plan: emptyPlan).state == "ready for maintenance")
        var unreported = empty
        unreported.hosts[0].availability = .unavailable("no DRS load report yet")
        #expect(MaintenanceReport.status(of: "a", request: request, view: unreported, plan: emptyPlan).state == "evacuating")
        #expect(MaintenanceReport.status(of: "a", request: MaintenanceRequest(active: false, since: 8), view: empty, plan: emptyPlan).state == "in service")
        // A VM paused by an operator is not "moving" for ever: it is blocked, with what to do.
        let paused = PlacementVM(id: "p", name: "p", host: "a", cpuDemandMilli: 0, memoryMiB: 512, movable: false, paused: true)
        let withPaused = PlacementInput(hosts: hosts, vms: [paused])
        let blocked = MaintenanceReport.status(of: "a", request: request, view: withPaused,
                                               plan: Placement.plan(withPaused, tolerance: BalanceTolerance(threshold: 3), maxMoves: 4))
        #expect(blocked.moving.isEmpty && blocked.blocked.map(\.vm) == ["p"] && blocked.blocked.first?.reason.contains("vm resume") == true)
    }
}

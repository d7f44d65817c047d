@testable import Agent
import Foundation
import HostHealth
import Membership
import MeshTime
import MeshWire
import Placement
import Schedules
import Testing

/// Health and schedule records in their protobuf form, the view under the health policy, and
/// the health probes against the real system (SQLite, /proc/pressure, NIO's event loops).
@Suite struct OperationsRecordTests {
    @Test func healthAndScheduleRecordsSurviveTheirProtobufFormAndNonsenseIsIgnored() {
        var runs = ScheduleRuns()
        runs.record(OccurrenceResult(index: 3, outcome: .missed, detail: "down", executor: "b", atUnix: 99))
        let records: [DRSRecord] = [
            DRSRecord(key: "health/a", version: 2, writer: "c", body: .health(HealthMark(state: .failing, reason: "fan", since: 7))),
            DRSRecord(key: "health-policy", version: 1, writer: "a", body: .healthPolicy(.evacuateWhenDegraded)),
            DRSRecord(key: "schedule/0a1b2c3d", version: 1, writer: "a", body: .schedule(Schedule(
                id: "0a1b2c3d", atUnix: 1_000, everySeconds: 86_400, action: .migrate(vm: "web", to: nil), createdBy: "a", createdAtUnix: 900))),
            DRSRecord(key: "schedule/ffff0000", version: 4, writer: "b", body: .schedule(Schedule(
                id: "ffff0000", atUnix: 2_000, action: .enterMaintenance(host: "c"), createdBy: "b", createdAtUnix: 900))),
            DRSRecord(key: "schedule-runs/0a1b2c3d", version: 3, writer: "b", body: .scheduleRuns(runs)),
        ]
        for record in records { #expect(DRSRecordCoding.record(DRSRecordCoding.wire(record)) == record) }
        var badState = DRSRecordCoding.wire(records[0])
        badState.health.state = "sick"
        #expect(DRSRecordCoding.record(badState) == nil)
        var badPolicy = DRSRecordCoding.wire(records[1])
        badPolicy.healthPolicy.policy = "sometimes"
        #expect(DRSRecordCoding.record(badPolicy) == nil)
        var wrongKey = DRSRecordCoding.wire(records[2])
        wrongKey.key = "schedule/other"
        #expect(DRSRecordCoding.record(wrongKey) == nil)
        var noAction = DRSRecordCoding.wire(records[3])
        noAction.schedule.action = nil
        #expect(DRSRecordCoding.record(noAction) == nil)
        var badOutcome = DRSRecordCoding.wire(records[4])
        badOutcome.scheduleRuns.recent[0].outcome = "perhaps"
        #expect(DRSRecordCoding.record(badOutcome) == nil)
        // Versions SQLite's signed integers cannot order as this host does, or that leave no next one.
        for version in [UInt64(Int64.max), UInt64(Int64.max) + 1, .max] {
            var tooHigh = DRSRecordCoding.wire(records[0])
            tooHigh.version = version
            #expect(DRSRecordCoding.record(tooHigh) == nil, "version \(version)")
        }
        // A writer that is not a host id (Protocol.md §2.1: ASCII, so every host orders writers alike).
        for writer in ["", "Node-A", "nöde", "-a", String(repeating: "a", count: 64)] {
            var odd = DRSRecordCoding.wire(records[0])
            odd.writer = writer
            #expect(DRSRecordCoding.record(odd) == nil, "writer \(writer)")
        }
        var highest = DRSRecordCoding.wire(records[0])
        highest.version = UInt64(Int64.max) - 1
        #expect(DRSRecordCoding.record(highest)?.version == UInt64(Int64.max) - 1)
    }

    @Test func thePolicySaysWhichUnhealthyHostsAreEvacuated() {
        func member(_ id: String, _ health: MemberMetadata.Health) -> Member {
            Member(id: MemberID(id), address: PeerAddress(host: "10.0.0.1", port: 7948), status: .alive, incarnation: 0,
                   metadata: MemberMetadata(version: 1, domain: "lab", cores: 4, memoryTotalBytes: 16 << 30, memoryFreeBytes: 12 << 30, health: health,
                                            channelAddress: PeerAddress(host: "10.0.0.1", port: 7946),
                                            healthReasons: health == .ok ? [] : ["\(HealthState(health).rawValue): why"]),
                   statusChangedAt: MeshInstant(nanosecondsSinceOrigin: 0))
        }
        let members = [member("ok", .ok), member("deg", .degraded), member("fail", .unhealthy)]
        func availability(_ policy: HealthPolicy) -> [String: PlacementHost.Availability] {
            Dictionary(uniqueKeysWithValues: members.map { ($0.id.hostID, DRSViewBuilder.host($0, domain: "lab", maintenance: [], healthPolicy: policy).availability) })
        }
        #expect(availability(.off) == ["ok": .available, "deg": .unavailable("degraded: why"), "fail": .unavailable("failing: why")])
        #expect(availability(.evacuateWhenFailing) == ["ok": .available, "deg": .unavailable("degraded: why"), "fail": .evacuating])
        #expect(availability(.evacuateWhenDegraded) == ["ok": .available, "deg": .evacuating, "fail": .evacuating])
    }

    @Test func probesMeasureTheRealSystem() async throws {
        #expect(HealthProbes.parsePressure("some avg10=1.50 avg60=0.20 avg300=0.00 total=123\nfull avg10=0.25 avg60=0.00 avg300=0.00 total=4\n")
                == ["some": 1.5, "full": 0.25])
        #expect(HealthProbes.parsePressure("garbage\n").isEmpty)
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("hm-health-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory; left behind it harms nothing
        let store = try AgentStore(stateDirectory: state)
        let ms = await HealthProbes.journalWriteMs(store)
        #expect(ms.isFinite && ms >= 0)
        let lag = await HealthProbes.eventLoopLagMs()
        #expect(lag != nil && lag! >= 0)
        // PSI is present on the build machines (MISSION.md); where it is, memory and io are read.
        if FileManager.default.fileExists(atPath: "/proc/pressure/memory") {
            let pressure = HealthProbes.pressure()
            #expect(pressure["memory full"] != nil && pressure["io some"] != nil, "\(pressure)")
        }
    }
}

/// The DRS record table in the agent's real SQLite store (Protocol.md §10.3).
@Suite struct DRSRecordStoreTests {
    @Test func aSaveNeverReplacesTheRecordThatSupersedesIt() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("hm-drs-store-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory; left behind it harms nothing
        let store = DRSRecordStore(store: try AgentStore(stateDirectory: state))
        let mark = { (reason: String) in DRSRecordBody.health(HealthMark(state: .failing, reason: reason, since: 7)) }
        try await store.save([DRSRecord(key: "health/a", version: 3, writer: "b", body: mark("newer"))])
        // Saves that finish after the winner was stored: an older version, and the same version by a smaller writer.
        try await store.save([DRSRecord(key: "health/a", version: 2, writer: "c", body: mark("older"))])
        try await store.save([DRSRecord(key: "health/a", version: 3, writer: "a", body: mark("tie, smaller writer"))])
        #expect(try await store.load() == [DRSRecord(key: "health/a", version: 3, writer: "b", body: mark("newer"))])
        // A record that supersedes it replaces it: a higher version, then the same version by a larger writer.
        try await store.save([DRSRecord(key: "health/a", version: 3, writer: "c", body: mark("tie, larger writer"))])
        #expect(try await store.load().map(\.writer) == ["c"])
        try await store.save([DRSRecord(key: "health/a", version: 4, writer: "a", body: nil)])
        #expect(try await store.load() == [DRSRecord(key: "health/a", version: 4, writer: "a", body: nil)])
    }
}

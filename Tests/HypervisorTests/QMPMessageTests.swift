import Foundation
import Hypervisor
import Testing

@Suite("QMP messages")
struct QMPMessageTests {
    @Test func parameterSetEncodesQEMUNamesAndOmitsUnsetFields() throws {
        let set = MigrationParameterSet(downtimeLimitMs: 300, maxBandwidth: 1 << 30, multifdChannels: 4)
        let json = try JSONValue.from(set)
        #expect(json == .object(["downtime-limit": .int(300), "max-bandwidth": .int(1 << 30), "multifd-channels": .int(4)]))
    }

    @Test func eventKinds() {
        #expect(QMPEvent(name: "SHUTDOWN", data: .object(["guest": .bool(true), "reason": .string("guest-shutdown")])).kind
            == .shutdown(guestInitiated: true, reason: "guest-shutdown"))
        #expect(QMPEvent(name: "MIGRATION_PASS", data: .object(["pass": .int(3)])).kind == .migrationPass(3))
        #expect(QMPEvent(name: "BLOCK_JOB_READY").kind == .other)
    }

    @Test func jsonValueKeepsLargeIntegersExact() throws {
        let value = try JSONValue.parse(Data(#"{"a": 10737418240, "b": 1.5, "c": [true, null, "x"]}"#.utf8))
        #expect(value["a"] == .int(10_737_418_240))
        #expect(value["b"]?.doubleValue == 1.5)
        #expect(value["c"] == .array([.bool(true), .null, .string("x")]))
    }
}

import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Issue 19, finding 1: absurd parameter values on the control socket. A real agent gets every
/// method with values out of range, of the wrong type or missing; each answer must be
/// `bad_request` naming the parameter (and, for numbers, the allowed range), and the agent
/// must still answer `status` afterwards (`vm.console` with `lines: -1` used to trap it).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ControlParameterTests {
    /// Any JSON value, so a test can send what no well-behaved client would.
    enum JSON: Encodable, Sendable {
        case int(Int), double(Double), string(String), bool(Bool), null
        case object([String: JSON])
        case array([JSON])

        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .int(let v): try c.encode(v)
            case .double(let v): try c.encode(v)
            case .string(let v): try c.encode(v)
            case .bool(let v): try c.encode(v)
            case .null: try c.encodeNil()
            case .object(let v): try c.encode(v)
            case .array(let v): try c.encode(v)
            }
        }
    }

    /// One absurd request and the words its refusal must contain.
    struct Case: Sendable, CustomStringConvertible {
        var method: String
        var params: JSON
        var mentions: [String]
        var description: String { "\(method) \(params)" }
    }

    /// The default settings as JSON, with `changes` applied.
    static func settings(_ changes: [String: JSON]) -> JSON {
        let s = MigrationSettings()
        var fields: [String: JSON] = [
            "downtimeLimitMs": .int(Int(s.downtimeLimitMs)), "maxBandwidthBytesPerSecond": .int(Int(s.maxBandwidthBytesPerSecond)),
            "armAutoConverge": .bool(s.armAutoConverge), "postcopyAllowed": .bool(s.postcopyAllowed),
            "throttleInitialPercent": .int(s.throttleInitialPercent), "throttleIncrementPercent": .int(s.throttleIncrementPercent),
            "throttleMaxPercent": .int(s.throttleMaxPercent), "announceInitialMs": .int(Int(s.announceInitialMs)),
            "announceMaxMs": .int(Int(s.announceMaxMs)), "announceRounds": .int(Int(s.announceRounds)), "announceStepMs": .int(Int(s.announceStepMs)),
        ]
        fields.merge(changes) { $1 }
        return .object(fields)
    }

    static let cases: [Case] = [
        // DRS, rules and maintenance (Protocol.md §10.8).
        Case(method: "drs.set", params: .object(["threshold": .int(0)]), mentions: ["threshold", "1...5"]),
        Case(method: "drs.set", params: .object(["threshold": .int(Int.max)]), mentions: ["threshold", "1...5"]),
        Case(method: "drs.set", params: .object(["automation": .string("sometimes")]), mentions: ["automation"]),
        Case(method: "drs.set", params: .object([:]), mentions: ["changes nothing"]),
        Case(method: "drs.apply", params: .object(["id": .string("")]), mentions: ["id", "empty"]),
        Case(method: "rule.add", params: .object(["rule": .object(["name": .string("r"), "kind": .string("near"), "vms": .object([:]), "hosts": .object([:]), "must": .bool(true)])]),
             mentions: ["rule.kind"]),
        Case(method: "rule.add", params: .object(["rule": .object(["name": .string("bad name"), "kind": .string("affinity"), "vms": .null, "hosts": .null, "must": .bool(true)])]),
             mentions: ["rule.vms"]),
        Case(method: "rule.add", params: .object(["rule": .object(["name": .string("bad name!"), "kind": .string("affinity"),
                                                                    "vms": .array([.string("x"), .string("y")]), "hosts": .array([]), "must": .bool(true)])]),
             mentions: ["rule name", "letters"]),
        Case(method: "rule.add", params: .object(["rule": .object(["name": .string("one"), "kind": .string("anti-affinity"),
                                                                    "vms": .array([.string("x")]), "hosts": .array([]), "must": .bool(true)])]),
             mentions: ["at least two VMs"]),
        Case(method: "rule.remove", params: .object(["name": .string("")]), mentions: ["name", "empty"]),
        Case(method: "host.maintenance", params: .object(["action": .string("reboot")]), mentions: ["action"]),
        Case(method: "host.maintenance", params: .object(["action": .string("enter"), "host": .string("")]), mentions: ["host", "empty"]),
        // vm.console: the crash of issue 19.
        Case(method: "vm.console", params: .object(["vm": .string("x"), "lines": .int(-1)]), mentions: ["lines", "-1", "1...100000"]),
        Case(method: "vm.console", params: .object(["vm": .string("x"), "lines": .int(0)]), mentions: ["lines", "1...100000"]),
        Case(method: "vm.console", params: .object(["vm": .string("x"), "lines": .int(Int.max)]), mentions: ["lines", "1...100000"]),
        Case(method: "vm.console", params: .object(["vm": .string("x"), "lines": .double(1e30)]), mentions: ["lines", "whole number"]),
        Case(method: "vm.console", params: .object(["vm": .string("x"), "lines": .double(2.5)]), mentions: ["lines", "whole number"]),
        Case(method: "vm.console", params: .object(["vm": .string("x"), "lines": .string("ten")]), mentions: ["lines", "wrong type"]),
        Case(method: "vm.console", params: .object(["vm": .string("x")]), mentions: ["lines", "missing"]),
        Case(method: "vm.console", params: .object(["vm": .string(""), "lines": .int(5)]), mentions: ["vm", "empty"]),
        Case(method: "vm.console", params: .null, mentions: ["params"]),
        // vm.start / vm.stop / vm.show: a reference of the wrong type, or none.
        Case(method: "vm.start", params: .object(["vm": .int(42)]), mentions: ["vm", "wrong type"]),
        Case(method: "vm.stop", params: .object([:]), mentions: ["vm", "missing"]),
        Case(method: "vm.show", params: .object(["vm": .null]), mentions: ["vm"]),
        // vm.create: sizes, enums, neither or both forms.
        Case(method: "vm.create", params: .object(["options": .object(["name": .string("a"), "kernel": .string("/k"), "memoryMiB": .int(-5)])]),
             mentions: ["-5 MiB", "at least 16"]),
        Case(method: "vm.create", params: .object(["options": .object(["name": .string("a"), "kernel": .string("/k"), "memoryMiB": .int(Int.max)])]),
             mentions: ["MiB", "at most"]),
        Case(method: "vm.create", params: .object(["options": .object(["name": .string("a"), "kernel": .string("/k"), "vcpus": .int(0)])]),
             mentions: ["vCPUs", "1 to 255"]),
        Case(method: "vm.create", params: .object(["options": .object(["name": .string("a"), "kernel": .string("/k"), "accelerator": .string("hvf")])]),
             mentions: ["options.accelerator", "auto, kvm, tcg"]),
        Case(method: "vm.create", params: .object(["options": .object(["name": .string("a")])]), mentions: ["options.kernel", "missing"]),
        Case(method: "vm.create", params: .object(["start": .bool(true)]), mentions: ["options", "spec"]),
        Case(method: "vm.create", params: .object(["options": .object(["name": .string("a"), "kernel": .string("/k"), "ingress": .string("tcp:22")])]),
             mentions: ["options.ingress", "wrong type"]),
        // migrate: destinations and every kind of setting.
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("10.0.0.2:0"), "settings": settings([:])]),
             mentions: ["to", "1...65535"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("10.0.0.2:99999"), "settings": settings([:])]),
             mentions: ["to", "0-65535"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .int(7), "settings": settings([:])]), mentions: ["to"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto"), "settings": settings(["downtimeLimitMs": .int(-1)])]),
             mentions: ["downtimeLimitMs", "1...2000000"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto"), "settings": settings(["maxBandwidthBytesPerSecond": .int(0)])]),
             mentions: ["maxBandwidthBytesPerSecond"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto"), "settings": settings(["multifdChannels": .int(100_000)])]),
             mentions: ["multifdChannels", "1...255"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto"), "settings": settings(["xbzrleCacheBytes": .int(-4096)])]),
             mentions: ["xbzrleCacheBytes"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto"),
                                                 "settings": settings(["postcopyAllowed": .bool(true), "postcopyAfterPasses": .int(-1)])]),
             mentions: ["postcopyAfterPasses", "0...1000"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto"), "settings": settings(["throttleMaxPercent": .int(250)])]),
             mentions: ["throttleMaxPercent", "1...99"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto"), "settings": settings(["announceRounds": .int(-7)])]),
             mentions: ["announceRounds"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto"), "settings": settings(["downtimeLimitMs": .string("fast")])]),
             mentions: ["settings.downtimeLimitMs", "wrong type"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto"), "settings": settings(["downtimeLimitMs": .double(1e19)])]),
             mentions: ["settings.downtimeLimitMs", "whole number"]),
        Case(method: "migrate", params: .object(["vm": .string("x"), "to": .string("auto")]), mentions: ["settings", "missing"]),
        // vm.resolve: an action that is none of the three.
        Case(method: "vm.resolve", params: .object(["vm": .string("x"), "action": .string("explode")]),
             mentions: ["action", "retry", "resume-here", "release-here"]),
        Case(method: "vm.resolve", params: .object(["vm": .string("x"), "action": .int(1)]), mentions: ["action", "wrong type"]),
        // join: addresses that name no reachable port.
        Case(method: "join", params: .object(["address": .string("nohost")]), mentions: ["address", "host:port"]),
        Case(method: "join", params: .object(["address": .string("10.0.0.2:0")]), mentions: ["address", "1...65535"]),
        Case(method: "join", params: .object(["address": .int(-1)]), mentions: ["address", "wrong type"]),
    ]

    @Test func absurdParametersAreRefusedAndTheAgentLives() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let agent = try await mesh.start("node-a")
        // A defined VM "x" (never started: no QEMU needed), so each request would reach the
        // code that used to trap on its value if the parameter were not checked first.
        var options = VMSpecOptions(name: "x", kernel: "/nonexistent/kernel")
        options.memoryMiB = 64
        _ = try await agent.control.call("vm.create", ControlTypes.CreateVM(options: options, start: false), as: VMInfo.self)
        for c in Self.cases {
            do {
                _ = try await agent.control.call(c.method, c.params, as: Empty.self)
                Issue.record("\(c) was accepted")
            } catch let error as ControlError {
                #expect(error.code == "bad_request", "\(c): \(error.code) \(error.message)")
                for word in c.mentions {
                    #expect(error.message.contains(word), "\(c): the answer does not mention \"\(word)\": \(error.message)")
                }
            }
            #expect(agent.isRunning, "the agent died on \(c)")
        }
        let status = try await agent.control.call("status", Empty(), as: ControlTypes.Status.self)
        #expect(status.hostID == "node-a" && status.vms == 1)
        let console = try await agent.control.call("vm.console", ControlTypes.Console(vm: "x", lines: 5), as: ControlTypes.Text.self)
        #expect(console.text.isEmpty) // never started: no console yet
    }
}

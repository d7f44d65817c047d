import ArgumentParser
import ControlAPI
import Foundation
import Placement

struct DRSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drs", abstract: "Placement and balancing decided by the mesh (Protocol.md §10).",
        subcommands: [Status.self, Set.self, Recommendations.self, Apply.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The DRS settings and the mesh's load as this host sees it.")
        @OptionGroup var control: ControlOptions

        func run() async throws {
            let status = try await control.client.call("drs.status", Empty(), as: DRSTypes.Status.self)
            if control.json { try control.printJSON(status); return }
            print("automation \(status.automation.rawValue), threshold \(status.threshold), round every \(Int(status.intervalSeconds)) s")
            print(String(format: "imbalance %.3f (target %.3f); moves started by this host: %d", status.imbalance, status.target, status.movesStarted))
            printTable(["HOST", "LOAD", "VMS", "STATE"], status.hosts.map { [$0.host, String(format: "%.2f", $0.load), "\($0.vms)", $0.state] })
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change the mesh-wide DRS settings (replicated to every agent).")
        @OptionGroup var control: ControlOptions
        @Option(help: "manual (recommend only), partial (place automatically, recommend moves) or full.") var automation: String?
        @Option(help: "Migration threshold: 1 (mandatory moves only) to 5 (any improvement); 3 is the default.") var threshold: Int?

        func run() async throws {
            var parsed: DRSSettings.Automation?
            if let automation {
                guard let value = DRSSettings.Automation(rawValue: automation) else { throw ValidationError("--automation must be manual, partial or full") }
                parsed = value
            }
            try control.printText(try await control.client.call("drs.set", DRSTypes.Set(automation: parsed, threshold: threshold), as: ControlTypes.Text.self))
        }
    }

    struct Recommendations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The moves DRS proposes now, with their reasons.")
        @OptionGroup var control: ControlOptions

        func run() async throws {
            let moves = try await control.client.call("drs.recommendations", Empty(), as: [DRSTypes.Recommendation].self)
            if control.json { try control.printJSON(moves); return }
            if moves.isEmpty { print("no move recommended: the mesh is balanced within the threshold and every rule holds"); return }
            printTable(["ID", "VM", "FROM", "TO", "REASON", "IMBALANCE"], moves.map {
                [$0.id, $0.vmName, $0.from, $0.to, $0.reason, String(format: "%.3f -> %.3f", $0.imbalanceBefore, $0.imbalanceAfter)]
            })
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one recommendation (on the host that owns its VM).")
        @OptionGroup var control: ControlOptions
        @Argument(help: "An id from `hostmesh drs recommendations`.") var id: String

        func run() async throws {
            try control.printText(try await control.client.call("drs.apply", DRSTypes.Apply(id: id), as: ControlTypes.Text.self))
        }
    }
}

struct RuleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rule", abstract: "VM-VM and VM-host placement rules, replicated to every agent.",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add (or replace) a rule.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "Rule name.") var name: String
        @Option(help: "affinity, anti-affinity, run-on or not-on.") var kind: String
        @Option(name: .customLong("vm"), help: "A VM name or id (repeatable).") var vms: [String] = []
        @Option(name: .customLong("host"), help: "A host id, for run-on and not-on (repeatable).") var hosts: [String] = []
        @Flag(help: "A \"should\" rule (kept unless a mandatory move has nowhere else to go); default \"must\".") var should = false
        @Flag(help: "The rule may name VMs not created yet (initial placement follows it).") var allowUnknownVm = false

        func run() async throws {
            guard let kind = PlacementRule.Kind(rawValue: kind) else { throw ValidationError("--kind must be affinity, anti-affinity, run-on or not-on") }
            let rule = PlacementRule(name: name, kind: kind, vms: vms, hosts: hosts, must: !should)
            try control.printText(try await control.client.call("rule.add", DRSTypes.AddRule(rule: rule, allowUnknownVMs: allowUnknownVm), as: ControlTypes.Text.self))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The rules, and which VMs break them now.")
        @OptionGroup var control: ControlOptions

        func run() async throws {
            let rows = try await control.client.call("rule.list", Empty(), as: [DRSTypes.RuleRow].self)
            if control.json { try control.printJSON(rows); return }
            printTable(["NAME", "KIND", "STRENGTH", "VMS", "HOSTS", "BROKEN BY", "VERSION"], rows.map {
                [$0.rule.name, $0.rule.kind.rawValue, $0.rule.strength, $0.rule.vms.joined(separator: ","), $0.rule.hosts.joined(separator: ","),
                 $0.brokenBy.isEmpty ? "-" : $0.brokenBy.joined(separator: ","), "\($0.version)@\($0.writer)"]
            })
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a rule.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "Rule name.") var name: String

        func run() async throws {
            try control.printText(try await control.client.call("rule.remove", DRSTypes.RemoveRule(name: name), as: ControlTypes.Text.self))
        }
    }
}

struct HostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "host", abstract: "Operations on hosts of the mesh.", subcommands: [Maintenance.self, HealthCommand.self])

    struct Maintenance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enter, exit or show a host's maintenance (any host, from any agent).")
        @OptionGroup var control: ControlOptions
        @Argument(help: "enter, exit or status.") var action: String
        @Argument(help: "Host id (default: this host).") var host: String?
        @Flag(help: "With enter: show progress until the host is ready for maintenance (or a VM cannot leave).") var wait = false

        func run() async throws {
            guard let action = DRSTypes.Maintenance.Action(rawValue: action) else { throw ValidationError("the action must be enter, exit or status") }
            var status = try await control.client.call("host.maintenance", DRSTypes.Maintenance(action: action, host: host), as: DRSTypes.MaintenanceStatus.self)
            // With --wait and --json: one status object per line, at each change (the last is final).
            let following = wait && action == .enter
            if control.json && !following { try control.printJSON(status); return }
            func show(_ status: DRSTypes.MaintenanceStatus) throws {
                print(control.json ? try JSONOutput.line(status) : Self.describe(status))
            }
            try show(status)
            guard following else { return }
            var last = status
            while status.state == "evacuating" {
                try await Task.sleep(for: .seconds(1))
                status = try await control.client.call("host.maintenance", DRSTypes.Maintenance(action: .status, host: status.host), as: DRSTypes.MaintenanceStatus.self)
                if control.json ? status != last : Self.describe(status) != Self.describe(last) { try show(status) }
                last = status
                if status.state == "evacuating", !status.blocked.isEmpty, status.remaining.count == status.blocked.count { break }
            }
        }

        static func describe(_ s: DRSTypes.MaintenanceStatus) -> String {
            var lines = ["\(s.host): \(s.state)" + (s.state == "evacuating" ? " (\(s.remaining.count) VM(s) left\(s.moving.isEmpty ? "" : ", moving: " + s.moving.joined(separator: ", ")))" : "")]
            for b in s.blocked { lines.append("  \(b.vm) cannot leave: \(b.reason)") }
            return lines.joined(separator: "\n")
        }
    }
}

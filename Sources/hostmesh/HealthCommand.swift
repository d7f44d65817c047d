import ArgumentParser
import ControlAPI

/// `hostmesh host health set|status|policy` (Protocol.md §11).
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health", abstract: "A host's health: what it measures, what an operator set, and the mesh's evacuation policy.",
        subcommands: [Set.self, Status.self, Policy.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark a host healthy, degraded or failing (any host, from any agent; replicated).")
        @OptionGroup var control: ControlOptions
        @Argument(help: "healthy (withdraws the mark), degraded or failing.") var state: String
        @Option(help: "Why (required unless healthy; shown to every operator).") var reason: String?
        @Argument(help: "Host id (default: this host).") var host: String?

        func run() async throws {
            let status = try await control.client.call("host.health", OperationsTypes.Health(action: .set, host: host, state: state, reason: reason),
                                                       as: OperationsTypes.HealthStatus.self)
            if control.json { try control.printJSON(status); return }
            print("marked \(status.host) \(state) (replicated to every agent; the host applies it within a few seconds); now:")
            print(Status.describe(status))
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A host's health as this agent knows it (its own: measured now).")
        @OptionGroup var control: ControlOptions
        @Argument(help: "Host id (default: this host).") var host: String?

        func run() async throws {
            let status = try await control.client.call("host.health", OperationsTypes.Health(action: .status, host: host), as: OperationsTypes.HealthStatus.self)
            if control.json { try control.printJSON(status); return }
            print(Self.describe(status))
        }

        static func describe(_ s: OperationsTypes.HealthStatus) -> String {
            var lines = ["\(s.host): \(s.state)" + (s.evacuating ? " (its VMs are moved away: policy \(s.policy))" : " (policy \(s.policy))")]
            for reason in s.reasons { lines.append("  \(reason)") }
            if let mark = s.operatorMark, !s.reasons.contains(where: { $0.contains("set by an operator") }) {
                lines.append("  operator's mark \(mark) (recorded; it applies once the host has it)")
            }
            for (name, value) in (s.measurements ?? [:]).sorted(by: { $0.key < $1.key }) {
                lines.append("  measured \(name): " + (value < 0 ? "failed" : String(format: "%.1f", value)))
            }
            return lines.joined(separator: "\n")
        }
    }

    struct Policy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show or set what happens to an unhealthy host's VMs (replicated to every agent).")
        @OptionGroup var control: ControlOptions
        @Argument(help: "off, evacuate-when-failing (default) or evacuate-when-degraded; none: show it.") var policy: String?

        func run() async throws {
            try control.printText(try await control.client.call("host.health", OperationsTypes.Health(action: .policy, policy: policy), as: ControlTypes.Text.self))
        }
    }
}

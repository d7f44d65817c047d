import ArgumentParser
import ControlAPI
import Placement

struct PoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "Resource pools: CPU and memory reservations, limits and shares for groups of VMs, replicated to every agent.",
        subcommands: [Create.self, Set.self, List.self, Remove.self]
    )

    /// The allocation flags of `create` and `set`.
    struct Allocation: ParsableArguments {
        @Option(help: "CPU reserved for the pool's VMs together, thousandths of a core.") var cpuReservation: Int?
        @Option(help: "At most this much CPU for its VMs together, thousandths of a core (0: no limit).") var cpuLimit: Int?
        @Option(help: "CPU shares: low, normal, high or a number.") var cpuShares: String?
        @Option(help: "Memory reserved for its VMs together, MiB.") var memoryReservation: Int?
        @Option(help: "Memory entitlement of its VMs together at most, MiB (0: no limit).") var memoryLimit: Int?
        @Option(help: "Memory shares: low, normal, high or a number.") var memoryShares: String?

        func change(_ name: String) throws -> PoolTypes.Change {
            func shares(_ text: String?, _ flag: String) throws -> Int? {
                guard let text else { return nil }
                guard let value = ResourceAllocation.shares(text) else { throw ValidationError("--\(flag) takes low, normal, high or 1-1000000") }
                return value
            }
            return PoolTypes.Change(name: name, cpuReservation: cpuReservation, cpuLimit: cpuLimit, cpuShares: try shares(cpuShares, "cpu-shares"),
                                    memoryReservation: memoryReservation, memoryLimit: memoryLimit, memoryShares: try shares(memoryShares, "memory-shares"))
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a pool.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "Pool name.") var name: String
        @OptionGroup var allocation: Allocation
        func run() async throws {
            try control.printText(try await control.client.call("pool.create", try allocation.change(name), as: ControlTypes.Text.self))
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a pool (flags left out keep their values).")
        @OptionGroup var control: ControlOptions
        @Argument(help: "Pool name.") var name: String
        @OptionGroup var allocation: Allocation
        func run() async throws {
            try control.printText(try await control.client.call("pool.set", try allocation.change(name), as: ControlTypes.Text.self))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the pools.")
        @OptionGroup var control: ControlOptions
        func run() async throws {
            let rows = try await control.client.call("pool.list", Empty(), as: [PoolTypes.Row].self)
            if control.json { try control.printJSON(rows); return }
            func text(_ a: ResourceAllocation, _ unit: String) -> String {
                "reservation \(a.reservation)\(unit), limit \(a.limit.map { "\($0)\(unit)" } ?? "none"), shares \(a.shares)"
            }
            for row in rows {
                print("\(row.pool.name): CPU \(text(row.pool.cpu, "m")); memory \(text(row.pool.memory, " MiB"))")
                print("  VMs: \(row.vms.isEmpty ? "none" : row.vms.joined(separator: ", ")) (reserving \(row.cpuReserved)m CPU, \(row.memoryReserved) MiB); v\(row.version) by \(row.writer)")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a pool that has no VM.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "Pool name.") var name: String
        func run() async throws {
            try control.printText(try await control.client.call("pool.remove", PoolTypes.Remove(name: name), as: ControlTypes.Text.self))
        }
    }
}

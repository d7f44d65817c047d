import ArgumentParser
import ControlAPI

/// `hostmesh schedule add|list|remove|history` (Protocol.md §12).
struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Migrations and maintenance at given times (UTC), replicated to every agent; each occurrence runs once.",
        subcommands: [Add.self, List.self, Remove.self, History.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Schedule a command: `schedule add --at TIME [--every INTERVAL] -- migrate VM (--to HOST|--auto)` or `... -- host maintenance enter HOST`.")
        @OptionGroup var control: ControlOptions
        @Option(help: "UTC: 2026-12-05T22:00:00Z (or \"2026-12-05 22:00\"), +90s / +30m / +2h / +1d from now, or @<unix seconds>.") var at: String
        @Option(help: "Repeat every INTERVAL (s, m, h or d; at least the agent's schedule_min_interval, 60 s by default).") var every: String?
        @Argument(parsing: .postTerminator, help: "The command, after --.") var command: [String] = []

        func run() async throws {
            let params = try Self.parse(command, at: at, every: every)
            let row = try await control.client.call("schedule.add", params, as: OperationsTypes.ScheduleRow.self)
            if control.json { try control.printJSON(row); return }
            print("schedule \(row.id): \(row.command) at \(row.at)" + (row.everySeconds.map { " every \($0) s" } ?? "") + " (replicated to every agent)")
        }

        static func parse(_ words: [String], at: String, every: String?) throws -> OperationsTypes.AddSchedule {
            switch words.first {
            case "migrate":
                let rest = Array(words.dropFirst())
                guard let vm = rest.first, !vm.hasPrefix("-") else { throw ValidationError("migrate needs a VM: `-- migrate VM (--to HOST|--auto)`") }
                if rest.dropFirst() == ["--auto"] { return OperationsTypes.AddSchedule(at: at, every: every, vm: vm) }
                if rest.count == 3, rest[1] == "--to" { return OperationsTypes.AddSchedule(at: at, every: every, vm: vm, to: rest[2]) }
                throw ValidationError("give the destination: `-- migrate \(vm) --to HOST` or `-- migrate \(vm) --auto`")
            case "host":
                guard words.count == 4, words[1] == "maintenance", words[2] == "enter" else {
                    throw ValidationError("the host command schedules is `-- host maintenance enter HOST`")
                }
                return OperationsTypes.AddSchedule(at: at, every: every, maintenanceHost: words[3])
            default:
                throw ValidationError("after --, give `migrate VM (--to HOST|--auto)` or `host maintenance enter HOST`")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The schedules, their next run and last result.")
        @OptionGroup var control: ControlOptions

        func run() async throws {
            let rows = try await control.client.call("schedule.list", Empty(), as: [OperationsTypes.ScheduleRow].self)
            if control.json { try control.printJSON(rows); return }
            printTable(["ID", "COMMAND", "AT", "EVERY", "NEXT", "LAST", "CREATED BY"], rows.map {
                [$0.id, $0.command, $0.at, $0.everySeconds.map { "\($0)s" } ?? "-", $0.next ?? "-", $0.last ?? "-", $0.createdBy]
            })
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a schedule (its history stays).")
        @OptionGroup var control: ControlOptions
        @Argument(help: "Schedule id.") var id: String

        func run() async throws {
            try control.printText(try await control.client.call("schedule.remove", OperationsTypes.RemoveSchedule(id: id), as: ControlTypes.Text.self))
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What became of each occurrence (the latest 20 per schedule).")
        @OptionGroup var control: ControlOptions
        @Argument(help: "Schedule id (default: all).") var id: String?

        func run() async throws {
            let rows = try await control.client.call("schedule.history", OperationsTypes.History(id: id), as: [OperationsTypes.OccurrenceRow].self)
            if control.json { try control.printJSON(rows); return }
            printTable(["OCCURRENCE", "DUE", "OUTCOME", "BY", "DETAIL"], rows.map { [$0.occurrence, $0.due, $0.outcome, $0.executor, $0.detail] })
        }
    }
}

import ArgumentParser
import ControlAPI
import Foundation
import Hypervisor

struct VMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Define, start, stop and inspect the VMs on this host.",
        subcommands: [Create.self, Start.self, Stop.self, Pause.self, Resume.self, List.self, Show.self, ConsoleLog.self, Resolve.self, MoveStorage.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Define a VM (direct kernel boot), optionally starting it.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "VM name.") var name: String
        @Option(help: "Memory in MiB.") var memory = 256
        @Option(help: "Virtual CPUs.") var vcpus = 1
        @Option(help: "Kernel image.") var kernel: String
        @Option(help: "Initial ramdisk.") var initrd: String?
        @Option(help: "Kernel command line.") var append = "console=ttyS0 quiet"
        @Option(help: "Test-guest workloads (hm.work=…), e.g. heartbeat,dirty:50.") var workload: String?
        @Option(help: "Accelerator: auto, kvm or tcg.") var accel = "auto"
        @Option(help: "Plug a NIC into this virtual network.") var network: String?
        @Option(help: "The NIC's address with prefix, e.g. 10.77.0.2/24 (also given to the test guest as hm.ip).") var ip: String?
        @Option(help: "The NIC's MAC (default: derived from the VM id).") var mac: String?
        @Option(help: ArgumentHelp("Allow new connections towards the VM matching this rule (repeatable; once given, nothing else is allowed in; `none` allows nothing). Replies to the VM's own connections always pass.",
                                   valueName: "proto[:port[-port]][@cidr]")) var ingress: [String] = []
        @Option(help: ArgumentHelp("Allow new connections from the VM matching this rule (repeatable, as --ingress).",
                                   valueName: "proto[:port[-port]][@cidr]")) var egress: [String] = []
        @Option(help: ArgumentHelp("A disk image (repeatable), attached as virtio-blk in order; raw unless it ends in .qcow2.",
                                   valueName: "path")) var disk: [String] = []
        @Flag(help: "The disks are on storage every host mounts at the same path (needed to migrate the VM).") var sharedStorage = false
        @Option(help: "When its QEMU dies unexpectedly: no, or on-failure (restart it, with backoff and a limit). Default: the mesh's (agent `restart`).")
        var restart: String?
        @Option(help: ArgumentHelp("A label federation grants may name (repeatable): a grant for VMs with given labels lets this VM cross into the other domain.",
                                   valueName: "label")) var label: [String] = []
        @OptionGroup var resources: ResourceOptions
        @Flag(help: "Start it now.") var start = false
        @Option(help: "auto: define it on the best host of the mesh (DRS initial placement), not necessarily this one.") var place: String?

        func run() async throws {
            guard place == nil || place == "auto" else { throw ValidationError("--place takes auto") }
            guard let accelerator = VMSpec.Accelerator(rawValue: accel) else { throw ValidationError("--accel must be auto, kvm or tcg") }
            // The agent builds the spec (id, MAC, addresses, rules, disk formats) from the options;
            // only the paths are resolved here, against this command's working directory.
            var options = VMSpecOptions(name: name, kernel: absolute(kernel))
            options.memoryMiB = memory
            options.vcpus = vcpus
            options.initrd = initrd.map(absolute)
            options.commandLine = append
            options.workload = workload
            options.accelerator = accelerator
            options.network = network
            options.ip = ip
            options.mac = mac
            options.ingress = ingress
            options.egress = egress
            options.disks = disk.map(absolute)
            options.sharedStorage = sharedStorage
            options.labels = label
            if let restart {
                guard let policy = VMSpec.RestartPolicy(rawValue: restart) else { throw ValidationError("--restart must be no or on-failure") }
                options.restart = policy
            }
            options.resources = try resources.resources()
            if place == "auto" {
                let placed = try await control.client.call("vm.place", DRSTypes.Place(create: ControlTypes.CreateVM(options: options, start: start)),
                                                           as: DRSTypes.Placed.self)
                if control.json { try control.printJSON(placed); return }
                printPlaced(placed)
                return
            }
            let info = try await control.client.call("vm.create", ControlTypes.CreateVM(options: options, start: start), as: VMInfo.self)
            if control.json { try control.printJSON(info) } else { printVMs([info]) }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a VM.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "VM name or id.") var vm: String
        @Option(help: "auto: start it on the best host of the mesh (DRS placement), wherever it is defined; it moves there if that is another host.")
        var place: String?
        func run() async throws {
            guard place == nil || place == "auto" else { throw ValidationError("--place takes auto") }
            if place == "auto" {
                let placed = try await control.client.call("vm.startPlaced", ControlTypes.VMReference(vm: vm), as: DRSTypes.Placed.self)
                if control.json { try control.printJSON(placed) } else { printPlaced(placed) }
                return
            }
            let info = try await control.client.call("vm.start", ControlTypes.VMReference(vm: vm), as: VMInfo.self)
            if control.json { try control.printJSON(info) } else { printVMs([info]) }
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a VM (QEMU quits).")
        @OptionGroup var control: ControlOptions
        @Argument(help: "VM name or id.") var vm: String
        func run() async throws {
            let info = try await control.client.call("vm.stop", ControlTypes.VMReference(vm: vm), as: VMInfo.self)
            if control.json { try control.printJSON(info) } else { printVMs([info]) }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause a running VM in place; frames for it are held (up to 2 s, 1 MiB) and delivered when it resumes.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "VM name or id.") var vm: String
        func run() async throws {
            let info = try await control.client.call("vm.pause", ControlTypes.VMReference(vm: vm), as: VMInfo.self)
            if control.json { try control.printJSON(info) } else { printVMs([info]) }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a VM paused by `vm pause`.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "VM name or id.") var vm: String
        func run() async throws {
            let info = try await control.client.call("vm.resume", ControlTypes.VMReference(vm: vm), as: VMInfo.self)
            if control.json { try control.printJSON(info) } else { printVMs([info]) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the VMs on this host.")
        @OptionGroup var control: ControlOptions
        func run() async throws {
            let infos = try await control.client.call("vm.list", Empty(), as: [VMInfo].self)
            if control.json { try control.printJSON(infos) } else { printVMs(infos) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a VM, its spec and its migration history.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "VM name or id.") var vm: String
        func run() async throws {
            let details = try await control.client.call("vm.show", ControlTypes.VMReference(vm: vm), as: VMDetails.self)
            if control.json { try control.printJSON(details); return }
            printVMs([details.info])
            if let problem = details.info.problem { print("problem: \(problem)") }
            print("restart: \(details.spec.restart?.rawValue ?? "mesh default")")
            if let elsewhere = details.restartElsewhere { print("restart elsewhere: \(elsewhere)") }
            if let restarts = details.info.restarts {
                let when = restarts.lastAt.map { " at " + ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) } ?? ""
                print("restarts: \(restarts.count), the last\(when): \(restarts.lastReason)")
            }
            print("migrations:")
            printMigrations(details.migrations)
        }
    }

    struct ConsoleLog: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "console-log", abstract: "Print the end of a VM's serial console.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "VM name or id.") var vm: String
        @Option(help: "Lines from the end.") var lines = 20
        func run() async throws {
            try control.printText(try await control.client.call("vm.console", ControlTypes.Console(vm: vm, lines: lines), as: ControlTypes.Text.self))
        }
    }
}

extension VMCommand {
    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or settle a VM whose handover is in doubt: a migration (its guest paused on this host) or a placed start's offer that got no answer.")
        @OptionGroup var control: ControlOptions
        @Argument(help: "VM name or id.") var vm: String
        @Flag(help: "Ask the destination again (a placed start's: drop this row if it took the VM, else take the VM back).") var retry = false
        @Flag(help: "Resume the guest here (only if the destination is down for good).") var resumeHere = false
        @Flag(help: "Confirms that the destination host is fenced: down and unable to come back with the VM.") var destinationFenced = false
        @Flag(help: "Release the guest to the destination (only if it runs there).") var releaseHere = false
        @Flag(help: "Confirms that the guest was seen running on the destination.") var destinationRunsIt = false

        func run() async throws {
            let action: ControlTypes.Resolve.Action?
            switch (retry, resumeHere, releaseHere) {
            case (false, false, false): action = nil
            case (true, false, false): action = .retry
            case (false, true, false):
                guard destinationFenced else { throw ValidationError("--resume-here needs --destination-fenced: resuming while the destination may run the guest would make two copies") }
                action = .resumeHere
            case (false, false, true):
                guard destinationRunsIt else { throw ValidationError("--release-here needs --destination-runs-it: releasing a guest the destination does not run loses it") }
                action = .releaseHere
            default: throw ValidationError("choose one of --retry, --resume-here, --release-here")
            }
            // The agent checks the confirmations again: they travel with the request.
            let request = ControlTypes.Resolve(vm: vm, action: action, destinationFenced: destinationFenced ? true : nil,
                                               destinationRunsIt: destinationRunsIt ? true : nil)
            try control.printText(try await control.client.call("vm.resolve", request, as: ControlTypes.Text.self))
        }
    }
}

func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

func printVMs(_ infos: [VMInfo]) {
    printTable(["NAME", "STATE", "VCPUS", "MEMORY", "PID", "ACCEL", "EPOCH", "RESTARTS", "ID"], infos.map {
        [$0.name, $0.state, "\($0.vcpus)", "\($0.memoryMiB) MiB", $0.pid.map { "\($0)" } ?? "-",
         $0.accelerator.map { String($0.prefix(3)) } ?? "-", $0.epoch.map { "\($0)" } ?? "-",
         $0.restarts.map { "\($0.count) (\($0.lastReason.replacingOccurrences(of: "QEMU was ", with: "")))" } ?? "-", String($0.id.prefix(8))]
    })
    // Why a VM is down, failed or restarting, under the table.
    for info in infos where ["crashed", "failed", "restarting"].contains(info.state) {
        if let problem = info.problem { print("\(info.name): \(info.state): \(problem)") }
    }
}

func printPlaced(_ placed: DRSTypes.Placed) {
    print("placed on \(placed.host) (hosts ranked: \(placed.ranking.joined(separator: ", ")))")
    if let reason = placed.reason { print("why: \(reason)") }
    printVMs([placed.info])
}

func printMigrations(_ records: [MigrationRecord]) {
    printTable(["ID", "VM", "ROLE", "PEER", "PHASE", "DOWNTIME", "TOTAL", "MOVED", "RESULT"], records.map { r in
        [String(r.id.prefix(8)), r.vm, r.role, r.peer, r.phase,
         r.report.map { "\($0.downtimeMs) ms" } ?? "-", r.report.map { "\($0.totalMs) ms" } ?? "-",
         r.report.map { String(format: "%.0f MB", Double($0.transferredBytes) / 1e6) } ?? "-",
         r.error.map { "error: \($0.prefix(60))" } ?? r.queuePosition.map { "waiting, position \($0)" } ?? (r.endedAt == nil ? "in progress" : "ok")]
    })
}

import ArgumentParser
import ControlAPI
import Foundation
import Hypervisor

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Live-migrate a VM to another host.")
    @OptionGroup var control: ControlOptions
    @Argument(help: "VM name or id.") var vm: String
    @Option(help: "The destination: a member's host id, or its channel address host:port.") var to: String?
    @Flag(help: "Let the mesh choose the destination from gossiped capacity.") var auto = false
    @Option(help: "Maximum guest pause QEMU aims for, ms.") var downtimeMs: Int64?
    @Option(help: "Bandwidth limit, MB/s (default: unlimited).") var bandwidth: Int64?
    @Option(help: "Parallel streams (QEMU multifd channels).") var multifd: Int?
    @Option(help: "XBZRLE cache, MiB (off by default).") var xbzrleCacheMb: Int64?
    @Option(help: "Stripe the migration stream across this many secure channels, 2-16, 1 for none, or 0 for as many as the measured round trip calls for (1 on a LAN, 8 at 150 ms); default 0, or 1 with --postcopy or --multifd.") var stripes: Int64?
    @Option(help: "The rate of the link to the destination, Mbit/s: progress then shows link use (throughput over it), and across a distance the source's stream buffers are sized to it (else to 250 Mbit/s).") var linkMbit: Int64?
    @Flag(help: "Do not arm auto-converge (CPU throttling) for the convergence ladder.") var noAutoConverge = false
    @Flag(help: "Allow post-copy if pre-copy cannot converge (a broken link afterwards loses the guest).") var postcopy = false
    @Option(help: "With --postcopy: switch to post-copy after this many pre-copy passes.") var postcopyAfter: Int?
    @Flag(help: "For a VM with local disks: keep the source's images after the handover (default: deleted once the destination runs the guest).")
    var keepSourceDisks = false
    @Flag(help: "Refuse at once when this host already runs its limit of outgoing migrations or the destination is busy (default: wait in the queue, in order).")
    var noQueue = false
    @Flag(help: "Only run the pre-flight checklist (machine type, CPU model, room, shared disks, networks) and print it; move nothing.")
    var check = false
    @Option(help: "Migrate into this federated domain (both domains must grant each other); with --via, and --to naming a host of that domain or nothing (its placement chooses).")
    var toDomain: String?
    @Option(help: "With --to-domain: a host of that domain to ask, its channel address host:port.") var via: String?
    @Flag(help: "With --to-domain: accept that a mapped network that is not stretched loses the VM at layer 2 (its peers here no longer reach it).")
    var acceptNetworkChange = false

    func validate() throws {
        if toDomain != nil {
            guard via != nil else { throw ValidationError("--to-domain needs --via HOST:PORT, a host of that domain") }
            guard !auto else { throw ValidationError("--to-domain does not take --auto: the receiving domain chooses unless --to names a host") }
        } else {
            guard via == nil, !acceptNetworkChange else { throw ValidationError("--via and --accept-network-change go with --to-domain") }
        }
        guard toDomain != nil || (to != nil) != auto else { throw ValidationError("give either --to HOST or --auto") }
        // The agent checks every setting; these two are checked here too because the command
        // multiplies them, and an absurd value would overflow before the agent could refuse it.
        if let bandwidth, !(1...1_000_000).contains(bandwidth) { throw ValidationError("--bandwidth must be 1 to 1000000 MB/s") }
        if let xbzrleCacheMb, !(1...(1 << 20)).contains(xbzrleCacheMb) { throw ValidationError("--xbzrle-cache-mb must be 1 to 1048576 MiB") }
        if let stripes, !(0...16).contains(stripes) { throw ValidationError("--stripes must be 0 (by round trip) to 16") }
        if let linkMbit, !(1...1_000_000).contains(linkMbit) { throw ValidationError("--link-mbit must be 1 to 1000000 Mbit/s") }
    }

    func run() async throws {
        let to: MigrationDestination
        if auto || toDomain != nil { to = .auto } else {
            do { to = try MigrationDestination(parsing: self.to ?? "") } catch { throw ValidationError("--to: \(error)") }
        }
        var settings = MigrationSettings()
        if let downtimeMs { settings.downtimeLimitMs = downtimeMs }
        if let bandwidth { settings.maxBandwidthBytesPerSecond = bandwidth * 1_000_000 }
        if let multifd { settings.multifdChannels = multifd }
        settings.postcopyAllowed = postcopy || postcopyAfter != nil
        settings.postcopyAfterPasses = postcopyAfter
        if let xbzrleCacheMb { settings.xbzrleCacheBytes = xbzrleCacheMb << 20 }
        settings.armAutoConverge = !noAutoConverge
        settings.linkMbit = linkMbit
        settings.stripes = stripes
        if check {
            let report: PreflightReport
            if let toDomain, let via {
                report = try await control.client.call("migrate.domain.check", ControlTypes.MigrateAcrossDomains(
                    vm: vm, domain: toDomain, via: via, to: self.to, settings: settings, acceptNetworkChange: acceptNetworkChange ? true : nil),
                    as: PreflightReport.self)
            } else {
                report = try await control.client.call("migrate.check", ControlTypes.Migrate(vm: vm, to: to, settings: settings), as: PreflightReport.self)
            }
            if control.json { try control.printJSON(report) } else {
                print("pre-flight checklist: \(vm) to \(report.destination)")
                for line in report.lines { print("  " + line) }
                print(report.passed ? "all items pass" : "\(report.items.filter { !$0.ok }.count) item(s) fail")
            }
            if !report.passed { throw ExitCode.failure }
            return
        }
        let interactive = isatty(STDOUT_FILENO) == 1 && !control.json
        var lastPrinted = Date.distantPast
        let onProgress: (Data) -> Void = { line in
            // Progress is for display: a line that does not decode is skipped, the final report still comes.
            guard !control.json, let p = try? JSONDecoder().decode(ProgressLine.self, from: line).progress else { return }
            let text: String
            switch p.phase {
            case "queued":
                text = "queued     position \(p.queuePosition ?? 0) in this host's queue (it starts when an outgoing slot frees)"
            case "busy":
                text = "busy       the destination receives its limit of migrations; asking again shortly"
            default:
                text = String(format: "%-10@ %5.1f%%  %7.1f MB/s  dirty %6.1f MB/s  round %d  %@", p.phase as NSString, p.percent,
                              p.mbPerSecond, p.dirtyMBPerSecond, p.iteration, p.rung as NSString) + (p.diskSummary.map { "  " + $0 } ?? "")
                    + (p.rttMs.map { String(format: "  rtt %.1f ms", $0) } ?? "")
                    + (p.linkUse.map { String(format: "  link use %.2f", $0) } ?? "")
            }
            if interactive {
                FileHandle.standardOutput.write(Data(("\r" + text).utf8))
            } else if Date().timeIntervalSince(lastPrinted) >= 0.5 || !["transfer", "mirror"].contains(p.phase) {
                print(text)
                lastPrinted = Date()
            }
        }
        let report: MigrationReport
        if let toDomain, let via {
            report = try await control.client.call("migrate.domain", ControlTypes.MigrateAcrossDomains(
                vm: vm, domain: toDomain, via: via, to: self.to, settings: settings, acceptNetworkChange: acceptNetworkChange ? true : nil,
                keepSourceDisks: keepSourceDisks ? true : nil), as: MigrationReport.self, onProgress: onProgress)
        } else {
            report = try await control.client.call("migrate", ControlTypes.Migrate(vm: vm, to: to, settings: settings, keepSourceDisks: keepSourceDisks,
                                                                                    noQueue: noQueue ? true : nil),
                                                   as: MigrationReport.self, onProgress: onProgress)
        }
        if interactive { print("") }
        if control.json { try control.printJSON(report); return }
        print("migrated \(vm) to \(toDomain.map { "domain \($0)" + (self.to.map { " (\($0))" } ?? "") } ?? "\(to)")")
        print("  downtime   \(report.downtimeMs) ms guest paused (QEMU's own figure \(report.qemuDowntimeMs) ms, agents' handover \(report.switchoverMs) ms)")
        print("  total      \(report.totalMs) ms")
        print("  moved      \(String(format: "%.1f", Double(report.transferredBytes) / 1e6)) MB at \(String(format: "%.0f", report.mbPerSecond)) MB/s, \(report.iterations) rounds, \(report.streams) encrypted stream(s)")
        if !report.ladder.isEmpty { print("  ladder     \(report.ladder.joined(separator: " → "))") }
        for disk in report.disks ?? [] {
            print("  disk \(disk.index)     \(disk.path): \(String(format: "%.1f", Double(disk.copiedBytes) / 1e6)) MB mirrored in \(disk.msToReady) ms"
                  + " (\(String(format: "%.0f", disk.mbPerSecond)) MB/s, \(disk.mode))")
        }
    }

    private struct ProgressLine: Decodable { var progress: MigrationProgressUpdate }
}

struct MigrationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrations", abstract: "List current and past migrations on this host.")
    @OptionGroup var control: ControlOptions
    func run() async throws {
        let records = try await control.client.call("migrations", Empty(), as: [MigrationRecord].self)
        if control.json { try control.printJSON(records) } else { printMigrations(records) }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the local agent.")
    @OptionGroup var control: ControlOptions
    func run() async throws {
        let status = try await control.client.call("status", Empty(), as: ControlTypes.Status.self)
        if control.json { try control.printJSON(status); return }
        print("\(status.hostID) in domain \(status.domain), channels on \(status.listen), \(status.vms) VM(s), \(status.software)")
    }
}

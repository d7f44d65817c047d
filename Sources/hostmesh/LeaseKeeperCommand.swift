import Agent
import ArgumentParser
import Foundation
import HA

/// `hostmesh lease-keeper`: the per-VM lease keeper process (Protocol.md §9.2), started by the
/// agent before a VM's QEMU; not for operators.
struct LeaseKeeperCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lease-keeper",
        abstract: "Hold a VM's lease on shared storage while its QEMU runs; kill the QEMU when the lease cannot be renewed (started by the agent).",
        shouldDisplay: false
    )

    @Option(help: "The lease directory on the shared storage (.hostmesh beside the VM's first disk).") var leaseDirectory: String
    @Option(help: "The VM id.") var vm: String
    @Option(help: "This host's id.") var host: String
    @Option(help: "The VM's ownership epoch on this host.") var epoch: Int64
    @Option(help: "The VM's runtime directory (QEMU's qemu.pid).") var runtimeDirectory: String
    @Option(help: "Renew interval, ms.") var renewMs: Int = 1000
    @Option(help: "Fence after this long without a completed renewal, ms.") var fenceMs: Int = 4000
    @Option(help: "Tick interval, ms.") var tickMs: Int = 250
    @Option(help: "The time a kill may take, ms.") var killMs: Int = 1000
    @Option(help: "Another host's expiry, ms (checked against the others).") var expiryMs: Int = 8000
    @Flag(help: "Start QEMU (as this keeper's child, killed when it dies) once the agent writes qemu.command; without it, watch a QEMU started by the agent.")
    var spawnsQemu = false
    @Flag(help: "A migration's destination: the lease says incoming until SIGUSR1 (the commit), then held.")
    var incoming = false

    func run() throws {
        let settings = LeaseSettings(renewInterval: .milliseconds(renewMs), fenceAfter: .milliseconds(fenceMs), tickInterval: .milliseconds(tickMs),
                                     killBound: .milliseconds(killMs), expiry: .milliseconds(expiryMs))
        do { try settings.validate() } catch { throw ValidationError("\(error)") }
        let keeper = LeaseKeeper(leaseDirectory: leaseDirectory, vm: vm, host: host, epoch: epoch, runtimeDirectory: runtimeDirectory,
                                 settings: settings, spawnsQEMUWith: spawnsQemu ? Self.executable : nil, incoming: incoming,
                                 injectedWriteFailure: TestHooks.leaseWriteFailure(), injectedWriteDelay: TestHooks.leaseWriteDelay())
        let outcome = keeper.run()
        FileHandle.standardError.write(Data("lease keeper for \(vm) at epoch \(epoch): \(outcome)\n".utf8))
        throw ExitCode(outcome.exitStatus)
    }

    /// This executable (for `qemu-exec`).
    static var executable: String {
        // No /proc: argv[0], as the agent does.
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

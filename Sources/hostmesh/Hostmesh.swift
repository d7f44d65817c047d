import ArgumentParser

/// The one hostmesh binary. The work lives in the libraries; commands parse and print.
@main
struct Hostmesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hostmesh",
        abstract: "Peer-to-peer live migration of QEMU virtual machines.",
        version: "0.1.0",
        subcommands: [AgentCommand.self, JoinCommand.self, MembersCommand.self, LeaveCommand.self, OwnershipCommand.self, StatusCommand.self, VMCommand.self, MigrateCommand.self, MigrationsCommand.self, EventsCommand.self, DRSCommand.self, RuleCommand.self, PoolCommand.self, HostCommand.self, ScheduleCommand.self,
                      KeysCommand.self, DomainCommand.self, DashboardCommand.self, BenchCommand.self, LeaseKeeperCommand.self, QEMUExecCommand.self]
    )

    /// The entry point (on the main thread): `qemu-exec` execs from here, before the commands
    /// run on other threads, because an exec from a thread other than the main one leaves the
    /// process showing as a zombie in /proc for a moment, and its watchers would take QEMU for dead.
    static func main() async {
        QEMUExecCommand.execIfAsked(CommandLine.arguments)
        await main(nil)
    }
}

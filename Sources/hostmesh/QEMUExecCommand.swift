import ArgumentParser
import Foundation
import Hypervisor

/// `hostmesh qemu-exec --parent PID -- QEMU ARGS…`: becomes QEMU, set to be killed when its
/// parent (the VM's lease keeper) dies, so that no QEMU runs on without its lease (Protocol.md
/// §11.2); started by the lease keeper, not for operators.
struct QEMUExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemu-exec",
        abstract: "Run QEMU so that it dies with its parent, the VM's lease keeper (started by the lease keeper).",
        shouldDisplay: false
    )

    @Option(help: "The parent's pid: the exec is refused if the parent is already gone.") var parent: Int32
    @Argument(parsing: .captureForPassthrough, help: "QEMU's executable and arguments.") var command: [String]

    func run() throws {
        let command = command.first == "--" ? Array(command.dropFirst()) : command
        guard let executable = command.first else { throw ValidationError("no command to run after --") }
        let failure = DetachedProcess.execDyingWithParent(parent, executable: executable, arguments: Array(command.dropFirst()))
        FileHandle.standardError.write(Data("qemu-exec: \(failure)\n".utf8))
        throw ExitCode(127)
    }
}

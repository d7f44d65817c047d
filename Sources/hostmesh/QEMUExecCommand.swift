import ArgumentParser
import Foundation
import Hypervisor

/// `hostmesh qemu-exec --parent PID -- QEMU ARGS…`: becomes QEMU, set to be killed when its
/// parent (the VM's lease keeper) dies, so that no QEMU runs on without its lease (Protocol.md
/// §9.2); started by the lease keeper, not for operators.
struct QEMUExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemu-exec",
        abstract: "Run QEMU so that it dies with its parent, the VM's lease keeper (started by the lease keeper).",
        shouldDisplay: false
    )

    @Option(help: "The parent's pid: the exec is refused if the parent is already gone.") var parent: Int32
    @Argument(parsing: .captureForPassthrough, help: "QEMU's executable and arguments.") var command: [String]

    /// Reached only when `execIfAsked` did not exec (its arguments were not in the expected form).
    func run() throws {
        throw ValidationError("usage: hostmesh qemu-exec --parent PID -- EXECUTABLE [ARGUMENT…]")
    }

    /// When `arguments` are `hostmesh qemu-exec --parent PID -- EXECUTABLE ARGUMENTS…`, becomes
    /// that executable (never returns; exits 127 when the exec is refused or fails). Called first
    /// thing on the main thread.
    static func execIfAsked(_ arguments: [String]) {
        guard arguments.count >= 6, arguments[1] == "qemu-exec", arguments[2] == "--parent", let parent = Int32(arguments[3]),
              arguments[4] == "--" else { return }
        let failure = DetachedProcess.execDyingWithParent(parent, executable: arguments[5], arguments: Array(arguments.dropFirst(6)))
        FileHandle.standardError.write(Data("qemu-exec: \(failure)\n".utf8))
        Foundation.exit(127)
    }
}

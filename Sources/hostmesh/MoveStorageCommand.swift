import ArgumentParser
import ControlAPI
import Foundation

extension VMCommand {
    /// `hostmesh vm move-storage VM DISK --to PATH` (Protocol.md §6.8).
    struct MoveStorage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "move-storage",
            abstract: "Move a running VM's disk to another file or directory on this host while the guest runs.",
            discussion: """
                The disk is mirrored into the new file (every guest write goes to both meanwhile), then the
                guest pauses for a moment while its device switches files, and the old file is deleted.
                Journaled: an agent that dies at any point ends the move one way or the other when it
                restarts, with every acknowledged write on the file the VM's spec names.
                """)
        @OptionGroup var control: ControlOptions
        @Argument(help: "VM name or id.") var vm: String
        @Argument(help: "The disk: its index (0, 1, … as `vm show` lists them) or its current path.") var disk: String
        @Option(help: "An existing directory (the file keeps its name) or the new file's path.") var to: String

        func run() async throws {
            let request = MoveStorageRequest(vm: vm, disk: Int(disk) != nil ? disk : absolute(disk), to: absolute(to))
            let interactive = isatty(STDOUT_FILENO) == 1 && !control.json
            let report = try await control.client.call("vm.move-storage", request, as: StorageMoveReport.self) { line in
                // Progress is for display: a line that does not decode is skipped, the final report still comes.
                guard interactive, let p = try? JSONDecoder().decode(ProgressLine.self, from: line).progress else { return }
                FileHandle.standardOutput.write(Data(String(format: "\r%-13@ %5.1f%%", p.phase as NSString, p.percent).utf8))
            }
            if interactive { print("") }
            if control.json { try control.printJSON(report); return }
            print("moved disk \(report.disk) of \(report.vm) to \(report.to)")
            print("  copied     \(String(format: "%.1f", Double(report.bytes) / 1e6)) MB in \(String(format: "%.0f", report.totalMs)) ms")
            print("  paused     \(String(format: "%.1f", report.pauseMs)) ms while the device switched files")
            print("  old file   \(report.from) " + (report.deletedOld ? "deleted" : "kept (another VM names it, or it could not be deleted: see the agent's log)"))
        }

        private struct ProgressLine: Decodable { var progress: MigrationProgressUpdate }
    }
}

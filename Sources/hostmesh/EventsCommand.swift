import ArgumentParser
import ControlAPI
import Foundation

/// `hostmesh events`: what happens on the mesh, as this agent sees it, until interrupted.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Stream what happens on the mesh as this agent sees it: members coming and going, migration phases.",
        discussion: """
            One line per event (`--json`: one JSON object per line), from now until interrupted:
            member.alive, member.suspect, member.dead, member.left, and migration.<role>.<phase> for every
            journaled phase of a migration this host takes part in (DRS moves, maintenance and schedules
            included); with --progress also migration.progress, each outgoing migration's progress (a few
            lines a second). Protocol.md §7 lists the fields.
            """)
    @OptionGroup var control: ControlOptions
    @Flag(help: "Also print migration.progress events (each outgoing migration's progress, a few a second).") var progress = false

    private struct ProgressLine: Decodable { var progress: AgentEvent }

    func run() async throws {
        let json = control.json, progress = self.progress
        _ = try await control.client.call("events", Empty(), as: Empty.self) { line in
            // A line that does not decode (a newer agent's event) is skipped rather than ending the stream.
            guard let event = try? JSONDecoder().decode(ProgressLine.self, from: line).progress else { return }
            guard progress || event.kind != "migration.progress" else { return }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                // Encoding a decoded event cannot fail; a line is only skipped if it did.
                guard let object = try? encoder.encode(event) else { return }
                FileHandle.standardOutput.write(object + Data([0x0a]))
            } else {
                // Unbuffered, so a pipe (`hostmesh events | grep …`) sees each event at once.
                FileHandle.standardOutput.write(Data((event.line + "\n").utf8))
            }
        }
    }
}

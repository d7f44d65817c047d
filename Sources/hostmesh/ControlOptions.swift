import ArgumentParser
import ControlAPI
import Foundation
import MeshIdentity

/// How a command reaches the local agent.
struct ControlOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: "The agent's state directory (its control socket lives there).")
    var stateDir = StateDirectory.defaultPath
    @Flag(help: "Print JSON instead of text (Deploy/OPERATING.md, \"The command line as JSON\", lists each command's shape).") var json = false

    var client: ControlClient { ControlClient(path: StateDirectory(stateDir).controlSocket) }

    func printJSON(_ value: some Encodable) throws {
        print(try JSONOutput.pretty(value))
    }

    /// A sentence the agent answered: itself, or `{"text": …}` with `--json`.
    func printText(_ answer: ControlTypes.Text) throws {
        if json { try printJSON(answer) } else { print(answer.text) }
    }
}

/// The command line's JSON: sorted keys, so the same answer prints the same bytes.
enum JSONOutput {
    /// Indented, for one answer.
    static func pretty(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// One line, for streams (one object per line).
    static func line(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// Prints rows as aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
    func line(_ cells: [String]) -> String {
        zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
            .trimmingCharacters(in: .whitespaces)
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

import Foundation

/// Protocol.md and the schema folder, found from this file's path, and the parts of the
/// document the tests check: the `.proto` blocks of its appendix and its test vectors.
struct ProtocolDocument {
    /// The repository root (two levels above this test folder).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let documentPath = root.appendingPathComponent("Protocol.md").path
    static let protosPath = root.appendingPathComponent("Sources/MeshWire/Protos").path

    let lines: [Substring]

    init(text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    static func load() throws -> ProtocolDocument {
        ProtocolDocument(text: try String(contentsOfFile: documentPath, encoding: .utf8))
    }

    /// Every ```proto block, keyed by the file name in backticks on the heading above it.
    /// A block without such a heading is keyed by "" (the test reports it).
    func protoBlocks() -> [(file: String, text: String)] {
        var result: [(String, String)] = []
        var heading = ""
        var index = 0
        while index < lines.count {
            let line = lines[index]
            if line.hasPrefix("#") {
                heading = line.split(separator: "`").first(where: { $0.hasSuffix(".proto") }).map(String.init) ?? ""
            }
            if line == "```proto" {
                var body: [Substring] = []
                index += 1
                while index < lines.count, lines[index] != "```" {
                    body.append(lines[index])
                    index += 1
                }
                result.append((heading, body.joined(separator: "\n") + "\n"))
                heading = ""
            }
            index += 1
        }
        return result
    }

    /// The first fenced block after the heading that contains `title`, as `label value` pairs.
    /// A line starting with a label holds the label and its value; an indented line continues the
    /// previous value (long hex is wrapped), appended without a separator.
    func vector(_ title: String) throws -> Vector {
        guard let headingIndex = lines.firstIndex(where: { $0.hasPrefix("#") && $0.contains(title) }) else {
            throw VectorError("Protocol.md has no heading containing \"\(title)\"")
        }
        guard let open = lines[headingIndex...].firstIndex(where: { $0.hasPrefix("```") }) else {
            throw VectorError("no fenced block after the heading \"\(title)\"")
        }
        var entries: [(String, String)] = []
        for line in lines[(open + 1)...] {
            if line.hasPrefix("```") { break }
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            if line.first == " " {
                guard !entries.isEmpty else { throw VectorError("continuation line before any label in \"\(title)\"") }
                entries[entries.count - 1].1 += line.trimmingCharacters(in: .whitespaces)
            } else {
                let label = line.prefix(while: { $0 != " " })
                entries.append((String(label), line.dropFirst(label.count).trimmingCharacters(in: .whitespaces)))
            }
        }
        return Vector(title: title, entries: entries)
    }
}

/// One test vector of Protocol.md: labelled values.
struct Vector {
    let title: String
    let entries: [(String, String)]

    /// The text of `label`.
    func text(_ label: String) throws -> String {
        guard let value = entries.first(where: { $0.0 == label })?.1 else {
            throw VectorError("vector \"\(title)\" has no \(label)")
        }
        return value
    }

    /// The bytes of `label`, whose value is hex.
    func bytes(_ label: String) throws -> [UInt8] {
        let text = try text(label)
        guard let bytes = HexText.decode(text) else { throw VectorError("vector \"\(title)\": \(label) is not hex: \(text)") }
        return bytes
    }
}

struct VectorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum HexText {
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let hi = nibble(digits[i]), let lo = nibble(digits[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}

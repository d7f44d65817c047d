import Foundation
import Testing

/// Rules of the code base that the compiler cannot check, checked over the sources themselves.
@Suite struct SourceRulesTests {
    /// The repository's `Sources` folder, found from this file's path.
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources")

    static func swiftFiles(under folder: String) -> [(path: String, lines: [Substring])] {
        let root = sources.appendingPathComponent(folder)
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }.sorted().compactMap { relative in
            let path = folder + "/" + relative
            guard let text = try? String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8) else { return nil }
            return (path, text.split(separator: "\n", omittingEmptySubsequences: false))
        }
    }

    /// Modules whose errors matter to safety or to the operator: every `try?` there says, in a
    /// comment on its line or the line above, why losing the error is safe (fail closed, else).
    static let shells = ["Agent", "MigrationService", "Migration", "ControlAPI", "SecureChannel", "GossipTransport",
                         "VirtualSwitch", "Hypervisor", "MeshIdentity", "Telemetry", "Dashboard", "hostmesh"]

    @Test func everyTryQuestionMarkSaysWhyLosingTheErrorIsSafe() {
        var unjustified: [String] = []
        for module in Self.shells {
            for file in Self.swiftFiles(under: module) {
                for (index, line) in file.lines.enumerated() where line.contains("try?") {
                    let code = line.split(separator: "//", maxSplits: 1).first ?? ""
                    guard Self.containsTryQuestionMark(code) else { continue } // only in a comment, or `.retry?`
                    let commented = line.contains("//") || (index > 0 && file.lines[index - 1].trimmingCharacters(in: .whitespaces).hasPrefix("//"))
                    if !commented { unjustified.append("\(file.path):\(index + 1): \(line.trimmingCharacters(in: .whitespaces))") }
                }
            }
        }
        #expect(unjustified.isEmpty, "\(unjustified.count) `try?` without a comment saying why losing the error is safe:\n\(unjustified.joined(separator: "\n"))")
    }

    /// Whether `code` has the keyword `try?`, not an identifier ending in "try" followed by `?` (`case .retry?:`).
    static func containsTryQuestionMark(_ code: Substring) -> Bool {
        var rest = code[...]
        while let range = rest.range(of: "try?") {
            let before = range.lowerBound == code.startIndex ? nil : code[code.index(before: range.lowerBound)]
            if !(before.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." } ?? false) { return true }
            rest = code[range.upperBound...]
        }
        return false
    }

    @Test func tryQuestionMarkIsTheKeywordOnly() {
        #expect(Self.containsTryQuestionMark("let x = try? f()"))
        #expect(Self.containsTryQuestionMark("(try? f()) ?? 0"))
        #expect(!Self.containsTryQuestionMark("case .retry?: return .retry"))
        #expect(!Self.containsTryQuestionMark("let entry? = x"))
    }

    /// The executors carry out every directive: a `default` would let a new one be dropped silently.
    @Test func executorsHaveNoDefaultCase() {
        let executors = Self.swiftFiles(under: "Migration/Executor")
        #expect(executors.count >= 2)
        for file in executors {
            #expect(!file.lines.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("default:") }, "\(file.path) has a default case")
        }
    }

    /// Test hooks are read from the environment by the executable only, never by a library.
    @Test func librariesReadNoTestHooksFromTheEnvironment() {
        for module in Self.shells where module != "hostmesh" {
            for file in Self.swiftFiles(under: module) {
                #expect(!file.lines.contains { $0.contains("HOSTMESH_TEST") }, "\(file.path) reads a test hook")
            }
        }
    }
}

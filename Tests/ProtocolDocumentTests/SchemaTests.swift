import Foundation
import Testing

/// Protocol.md §13 holds every `.proto` file of Sources/MeshWire/Protos verbatim, so the document
/// and the schemas the code is generated from cannot drift apart (issue 17).
@Suite struct SchemaTests {
    @Test func everySchemaFileIsInTheDocumentVerbatim() throws {
        let blocks = try ProtocolDocument.load().protoBlocks()
        let files = try FileManager.default.contentsOfDirectory(atPath: ProtocolDocument.protosPath)
            .filter { $0.hasSuffix(".proto") }.sorted()
        #expect(!files.isEmpty)
        for file in files {
            let text = try String(contentsOfFile: ProtocolDocument.protosPath + "/" + file, encoding: .utf8)
            let matching = blocks.filter { $0.file == file }
            #expect(matching.count == 1, "Protocol.md must have exactly one ```proto block headed by `\(file)`; it has \(matching.count)")
            if let block = matching.first, block.text != text {
                Issue.record("Protocol.md's block for \(file) differs from Sources/MeshWire/Protos/\(file) at line \(Self.firstDifference(block.text, text)); copy the file into the document")
            }
        }
    }

    @Test func everySchemaBlockNamesAFile() throws {
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: ProtocolDocument.protosPath))
        for block in try ProtocolDocument.load().protoBlocks() {
            #expect(files.contains(block.file), "a ```proto block in Protocol.md is headed by \"\(block.file)\", which is no file in Sources/MeshWire/Protos")
        }
    }

    @Test func aChangedByteIsFound() throws {
        // The comparison itself can fail: one changed field number in the document is caught.
        let text = try String(contentsOfFile: ProtocolDocument.documentPath, encoding: .utf8)
        let changed = text.replacingOccurrences(of: "uint64 epoch = 3;", with: "uint64 epoch = 4;")
        #expect(changed != text)
        let block = ProtocolDocument(text: changed).protoBlocks().first { $0.file == "agent.proto" }
        let file = try String(contentsOfFile: ProtocolDocument.protosPath + "/agent.proto", encoding: .utf8)
        #expect(block != nil && block?.text != file)
    }

    static func firstDifference(_ a: String, _ b: String) -> Int {
        let la = a.split(separator: "\n", omittingEmptySubsequences: false), lb = b.split(separator: "\n", omittingEmptySubsequences: false)
        for i in 0..<max(la.count, lb.count) where i >= la.count || i >= lb.count || la[i] != lb[i] { return i + 1 }
        return 0
    }
}

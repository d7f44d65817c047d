import Foundation
import Testing

/// `domain init`, `domain certify` and `domain delegate` print what they wrote as JSON with
/// `--json` (Deploy/OPERATING.md, "The command line as JSON"), like every command that prints.
struct DomainCommandJSONTests {
    func json(_ arguments: [String]) throws -> [String: Any] {
        let (status, output) = try runTool(AgentProcess.binary, arguments)
        #expect(status == 0, "hostmesh \(arguments.joined(separator: " ")): \(output)")
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        return try #require(object, "not a JSON object: \(output)")
    }

    @Test func theFileWritingDomainCommandsPrintWhatTheyWroteAsJSON() throws {
        let root = NSTemporaryDirectory() + "hm-domain-json-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: root) } // a temporary directory: leaving it is harmless
        let created = try json(["domain", "init", "lab", "--domain-dir", root + "/d", "--json"])
        #expect(created["domain"] as? String == "lab" && (created["key"] as? String)?.count == 16)
        #expect(created["path"] as? String == root + "/d/domain.pub")
        let (status, output) = try runTool(AgentProcess.binary, ["keys", "init", "--host-id", "n1", "--state-dir", root + "/s"])
        #expect(status == 0, "\(output)")
        let certified = try json(["domain", "certify", "--domain-dir", root + "/d", "--host-pub", root + "/s/host.pub", "--json"])
        #expect(certified["host"] as? String == "n1" && certified["serial"] as? Int == 1 && certified["path"] as? String == root + "/s/host.cert")
        #expect((certified["notAfter"] as? Int ?? 0) > Int(Date().timeIntervalSince1970))
        let delegated = try json(["domain", "delegate", "--domain-dir", root + "/d", "--host-pub", root + "/s/host.pub", "--json"])
        #expect(delegated["host"] as? String == "n1" && delegated["serial"] as? Int == 2 && delegated["path"] as? String == root + "/s/issuer.cert")
        #expect(FileManager.default.fileExists(atPath: root + "/s/issuer.cert"))
    }
}

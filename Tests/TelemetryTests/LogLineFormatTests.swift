import Foundation
import Logging
import Synchronization
import Telemetry
import Testing

@Suite("Log line formats")
struct LogLineFormatTests {
    let metadata: Logger.Metadata = ["vm.id": "web 1", "mesh.host": "a", "count": .stringConvertible(3),
                                     "tags": .array(["x", "y"]), "quote": "say \"hi\"\n"]

    @Test func logfmtQuotesOnlyWhatNeedsIt() {
        let line = LogLineFormat.logfmt.line(timestamp: "2026-12-05T13:00:00.123Z", level: .warning, label: "hostmesh.a",
                                             message: "migration refused: no room", source: "Agent", metadata: metadata)
        #expect(line == #"ts=2026-12-05T13:00:00.123Z level=warning logger=hostmesh.a msg="migration refused: no room" "#
            + #"count=3 mesh.host=a quote="say \"hi\"\n" tags="[\"x\", \"y\"]" vm.id="web 1""#)
        #expect(!line.contains("\n"), "one event, one line")
    }

    @Test func jsonLinesParseWithEveryField() throws {
        let line = LogLineFormat.json.line(timestamp: "2026-12-05T13:00:00.123Z", level: .info, label: "hostmesh.a",
                                           message: "tab\there \u{1}", source: "Agent", metadata: metadata)
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["ts"] as? String == "2026-12-05T13:00:00.123Z")
        #expect(object["level"] as? String == "info")
        #expect(object["logger"] as? String == "hostmesh.a")
        #expect(object["msg"] as? String == "tab\there \u{1}")
        #expect(object["source"] as? String == "Agent")
        #expect(object["vm.id"] as? String == "web 1")
        #expect(object["quote"] as? String == "say \"hi\"\n")
        #expect(object["count"] as? String == "3")
        #expect(object["tags"] as? [String] == ["x", "y"])
    }

    @Test func metadataCannotOverwriteTheFixedFields() throws {
        let line = LogLineFormat.json.line(timestamp: "t", level: .error, label: "l", message: "real", source: "s", metadata: ["msg": "forged"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["msg"] as? String == "real")
    }

    @Test func theHandlerFollowsTheSharedLevelAndMergesMetadata() throws {
        let lines = Mutex<[String]>([])
        let level = Mutex(Logger.Level.info)
        var logger = Logger(label: "hostmesh.test") { label in
            StructuredLogHandler(label: label, format: .json, level: { level.withLock { $0 } }, write: { line in lines.withLock { $0.append(line) } })
        }
        logger[metadataKey: "mesh.host"] = "a"
        logger.debug("hidden at info")
        logger.info("shown", metadata: ["vm.id": "v1"])
        level.withLock { $0 = .debug }
        logger.debug("shown at debug")
        let written = lines.withLock { $0 }
        #expect(written.count == 2)
        #expect(written.allSatisfy { $0.hasSuffix("\n") })
        let first = try #require(try JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: Any])
        #expect(first["msg"] as? String == "shown" && first["mesh.host"] as? String == "a" && first["vm.id"] as? String == "v1")
        #expect((first["ts"] as? String)?.hasSuffix("Z") == true)
    }
}

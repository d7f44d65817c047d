import Foundation
import Hypervisor
import Testing

/// The QMP client against a scripted server that misbehaves: every failure must be a typed
/// error, promptly, never a hang or a crash.
@Suite("QMP client against a misbehaving server")
struct QMPFakeServerTests {
    private func withServer(_ script: @escaping @Sendable (FakeQMPServer.Connection) -> Void,
                            _ body: (String) async throws -> Void) async throws {
        let directory = TestSupport.temporaryDirectory()
        let server = FakeQMPServer(path: directory + "/qmp.sock", script: script)
        defer {
            server.stop()
            TestSupport.remove(directory)
        }
        try await body(server.path)
    }

    private var quick: QMPClient.Configuration {
        var configuration = QMPClient.Configuration()
        configuration.connectTimeout = .milliseconds(500)
        configuration.commandTimeout = .seconds(2)
        return configuration
    }

    @Test func malformedJSONIsATypedErrorAndClosesTheConnection() async throws {
        try await withServer({ connection in
            connection.negotiate()
            _ = connection.readCommand()
            connection.send("{this is not json\r\n")
            _ = connection.readLine()
        }) { path in
            let client = try await QMPClient.connect(path: path, configuration: quick)
            #expect(client.greeting.version == "7.2.0")
            await #expect(throws: QMPError.malformedMessage(excerpt: "{this is not json\r")) {
                try await client.queryStatus()
            }
            // Nothing after nonsense can be trusted: later commands fail at once.
            await #expect(throws: QMPError.self) { try await client.queryStatus() }
            await client.waitUntilClosed()
        }
    }

    @Test func closingMidCommandIsDisconnectedNamingTheCommand() async throws {
        try await withServer({ connection in
            connection.negotiate()
            _ = connection.readCommand()
            connection.close()
        }) { path in
            let client = try await QMPClient.connect(path: path, configuration: quick)
            do {
                _ = try await client.queryMigrate()
                Issue.record("expected an error")
            } catch let error as QMPError {
                guard case let .disconnected(command, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(command == "query-migrate")
                #expect(error.description.contains("QEMU"))
            }
        }
    }

    @Test func jsonThatIsNotQMPIsRejected() async throws {
        try await withServer({ connection in
            connection.negotiate()
            _ = connection.readCommand()
            connection.send(#"[1, 2, 3]"# + "\n")
            _ = connection.readLine()
        }) { path in
            let client = try await QMPClient.connect(path: path, configuration: quick)
            await #expect(throws: QMPError.unexpectedMessage(excerpt: "[1, 2, 3]")) { try await client.stop() }
        }
    }

    @Test func aSilentServerTimesOutTheCommandAndTheConnectionSurvives() async throws {
        try await withServer({ connection in
            connection.negotiate()
            let ignored = connection.readCommand()
            guard let next = connection.readCommand() else { return }
            // The late answer to the first command must be dropped, the second answered.
            connection.send(#"{"return": {}, "id": \#(ignored?.id ?? "null")}"# + "\n")
            connection.send(#"{"return": {"running": true, "status": "running", "singlestep": false}, "id": \#(next.id)}"# + "\n")
            _ = connection.readLine()
        }) { path in
            let client = try await QMPClient.connect(path: path, configuration: quick)
            await #expect(throws: QMPError.timeout(command: "stop", after: .milliseconds(200))) {
                try await client.execute("stop", timeout: .milliseconds(200))
            }
            let status = try await client.queryStatus()
            #expect(status == VMRunStatus(running: true, status: .running))
        }
    }

    @Test func noGreetingIsAGreetingTimeout() async throws {
        try await withServer({ connection in
            _ = connection.readLine()
        }) { path in
            var configuration = quick
            configuration.connectTimeout = .milliseconds(200)
            await #expect(throws: QMPError.greetingTimeout(path: path, after: .milliseconds(200))) {
                try await QMPClient.connect(path: path, configuration: configuration)
            }
        }
    }

    @Test func aFirstMessageThatIsNotAGreetingIsNotQMP() async throws {
        try await withServer({ connection in
            connection.send(#"{"return": {}}"# + "\n")
            _ = connection.readLine()
        }) { path in
            await #expect(throws: QMPError.notQMP(path: path, firstMessage: #"{"return": {}}"#)) {
                try await QMPClient.connect(path: path, configuration: quick)
            }
        }
    }

    @Test func qmpErrorsCarryClassAndDescription() async throws {
        try await withServer({ connection in
            connection.negotiate()
            guard let command = connection.readCommand() else { return }
            connection.send(#"{"error": {"class": "GenericError", "desc": "boom"}, "id": \#(command.id)}"# + "\n")
            _ = connection.readLine()
        }) { path in
            let client = try await QMPClient.connect(path: path, configuration: quick)
            await #expect(throws: QMPError.commandFailed(command: "cont", errorClass: "GenericError", description: "boom")) {
                try await client.cont()
            }
        }
    }

    @Test func aResultOfTheWrongShapeIsUnexpectedResult() async throws {
        try await withServer({ connection in
            connection.negotiate()
            guard let command = connection.readCommand() else { return }
            connection.send(#"{"return": {"running": "yes"}, "id": \#(command.id)}"# + "\n")
            _ = connection.readLine()
        }) { path in
            let client = try await QMPClient.connect(path: path, configuration: quick)
            do {
                _ = try await client.queryStatus()
                Issue.record("expected an error")
            } catch let error as QMPError {
                guard case let .unexpectedResult(command, _, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(command == "query-status")
            }
        }
    }

    @Test func eventsAreStreamedAndTheStreamEndsWithTheConnection() async throws {
        try await withServer({ connection in
            connection.negotiate()
            guard let command = connection.readCommand() else { return }
            connection.send(#"{"timestamp": {"seconds": 1700000000, "microseconds": 500000}, "event": "STOP"}"# + "\n")
            connection.send(#"{"event": "MIGRATION", "data": {"status": "active"}, "timestamp": {"seconds": 1, "microseconds": 0}}"# + "\n")
            connection.send(#"{"return": {}, "id": \#(command.id)}"# + "\n")
            connection.close()
        }) { path in
            let client = try await QMPClient.connect(path: path, configuration: quick)
            let events = client.events()
            try await client.stop()
            var kinds: [QMPEvent.Kind] = []
            for await event in events { kinds.append(event.kind) }
            #expect(kinds == [.stop, .migration(status: "active")])
        }
    }

    @Test func aMissingSocketIsConnectFailed() async throws {
        let directory = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(directory) }
        let path = directory + "/absent.sock"
        var caught: QMPError?
        do {
            _ = try await QMPClient.connect(path: path, configuration: quick)
        } catch {
            caught = error
        }
        guard let error = caught, case let .connectFailed(failedPath, _) = error else {
            Issue.record("expected connectFailed, got \(String(describing: caught))")
            return
        }
        #expect(failedPath == path)
        #expect(error.description.contains("-qmp unix:\(path)"))
    }
}

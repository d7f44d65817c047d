import ControlAPI
@testable import Dashboard
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import NIOConcurrencyHelpers
import Testing

/// The dashboard's HTTP server against a real control socket whose agent is a stand-in that
/// records what it is asked: the token is required everywhere, and every action is the control
/// method the command line would call, with its parameters.
@Suite(.timeLimit(.minutes(1)))
struct DashboardServerTests {
    static let token = String(repeating: "5a", count: 32)

    /// The stand-in agent: canned answers, and the methods and parameter lines it received.
    final class StandIn: Sendable {
        let requests = NIOLockedValueBox<[String]>([])

        func handle(_ request: ControlRequest, _ responder: ControlResponder) async throws -> any Encodable & Sendable {
            requests.withLockedValue { $0.append(request.method) }
            switch request.method {
            case "status": return ControlTypes.Status(hostID: "node-a", domain: "lab", listen: "127.0.0.1:1", software: "hostmesh test", vms: 1)
            case "members":
                return [MemberRow(host: "node-a", domain: "lab", address: "127.0.0.1:2", status: "alive", incarnation: 1, cores: 2, memoryFreeMiB: 4096,
                                  vms: 1, load: 0.5, migrations: 0, lastUpdateSeconds: 0, local: true),
                        MemberRow(host: "<b>node-b</b>", domain: "lab", address: "127.0.0.1:3", status: "alive", incarnation: 1, cores: 2,
                                  memoryFreeMiB: 4096, vms: 0, load: 0.1, migrations: 0, lastUpdateSeconds: 0.5, local: false)]
            case "drs.vms": return [DRSTypes.MeshVM(id: "1", name: "web", host: "node-a", memoryMiB: 128, cpuDemandMilli: 100, movable: true, busy: false)]
            case "vm.list": return [VMInfo(id: "1", name: "web", state: "running", vcpus: 1, memoryMiB: 128)]
            case "migrations", "drs.recommendations": return [String]()
            case "drs.status": throw ControlError.unavailable("DRS is resting")
            case "host.maintenance":
                let p = try request.params(DRSTypes.Maintenance.self)
                return DRSTypes.MaintenanceStatus(host: p.host ?? "node-a", state: p.action == .enter ? "evacuating" : "in service", since: nil,
                                                  remaining: [], moving: [], blocked: [])
            case "drs.apply":
                let p = try request.params(DRSTypes.Apply.self)
                throw ControlError.notFound("no recommendation has id \(p.id)")
            case "migrate":
                let p = try request.params(ControlTypes.Migrate.self)
                requests.withLockedValue { $0.append("migrate \(p.vm) to \(p.to)") }
                try await responder.progress(MigrationProgressUpdate(phase: "transfer", percent: 40, mbPerSecond: 100, dirtyMBPerSecond: 1, iteration: 1, rung: "normal"))
                return MigrationReport(totalMs: 900, qemuDowntimeMs: 20, switchoverMs: 5, downtimeMs: 25, transferredBytes: 1_000_000,
                                       mbPerSecond: 100, iterations: 2, ladder: [], streams: 1)
            case "events":
                // A migration started elsewhere (DRS, the command line): its progress, then its end.
                let events = [
                    AgentEvent(time: "2026-01-01T00:00:00.000Z", kind: "migration.source.transferring", host: "node-a", peer: "node-b", vm: "web",
                               vmID: "1", migration: "m-1"),
                    AgentEvent(time: "2026-01-01T00:00:00.100Z", kind: "migration.progress", host: "node-a", peer: "node-b", vm: "web", vmID: "1",
                               migration: "m-1", progress: MigrationProgressUpdate(phase: "transfer", percent: 70, mbPerSecond: 300,
                                                                                   dirtyMBPerSecond: 2, iteration: 1, rung: "normal")),
                    AgentEvent(time: "2026-01-01T00:00:00.200Z", kind: "member.alive", host: "node-a", peer: "node-c"),
                    AgentEvent(time: "2026-01-01T00:00:00.300Z", kind: "migration.source.done", host: "node-a", peer: "node-b", vm: "web", vmID: "1",
                               migration: "m-1"),
                ]
                for event in events { try await responder.progress(event) }
                await responder.clientLeft()
                return Empty()
            default: throw ControlError.badRequest("unknown method \"\(request.method)\"")
            }
        }
    }

    /// Runs a dashboard in front of the stand-in for the length of `body`.
    func withDashboard(_ body: (String, StandIn) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "hm-dash-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let logger = Logger(label: "dashboard-test")
        let control = try await ControlServer.bind(path: dir + "/control.sock", logger: logger)
        let standIn = StandIn()
        let (bound, sink) = AsyncStream.makeStream(of: HostPort.self)
        let service = DashboardService(settings: .init(listen: HostPort(host: "127.0.0.1", port: 0), controlSocket: dir + "/control.sock",
                                                       token: Self.token), logger: logger) { sink.yield($0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await control.run { try await standIn.handle($0, $1) } }
            group.addTask { try await service.run() }
            var iterator = bound.makeAsyncIterator()
            guard let address = await iterator.next() else { throw ControlError.failed("the dashboard did not start") }
            defer { group.cancelAll() }
            try await body("http://\(address.host):\(address.port)", standIn)
        }
    }

    final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        // @unchecked Sendable is safe: no state.
        func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
            completionHandler(nil)
        }
    }

    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        return URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
    }()

    func call(_ method: String, _ url: String, headers: [String: String] = [:], body: String? = nil) async throws -> (Int, [String: String], String) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        for (key, value) in headers { request.setValue(value, forHTTPHeaderField: key) }
        request.httpBody = body.map { Data($0.utf8) }
        let (data, response) = try await Self.session.data(for: request)
        let http = response as? HTTPURLResponse
        let fields = (http?.allHeaderFields as? [String: String]) ?? [:]
        return (http?.statusCode ?? 0, Dictionary(fields.map { ($0.key.lowercased(), $0.value) }) { a, _ in a }, String(decoding: data, as: UTF8.self))
    }

    static let bearer = ["Authorization": "Bearer \(token)"]
    static let json = ["Authorization": "Bearer \(token)", "Content-Type": "application/json"]

    @Test func nothingButTheLoginFormIsServedWithoutTheToken() async throws {
        try await withDashboard { base, standIn in
            for path in ["/", "/app.js", "/events", "/api/state", "/nowhere"] {
                #expect(try await call("GET", base + path).0 == 401, "GET \(path)")
                #expect(try await call("GET", base + path, headers: ["Authorization": "Bearer " + String(repeating: "0", count: 64)]).0 == 401)
                #expect(try await call("GET", base + path, headers: ["Cookie": "hostmesh_dashboard=" + Self.token.dropLast() + "0"]).0 == 401)
            }
            for path in ["/api/migrate", "/api/drs/apply", "/api/maintenance"] {
                #expect(try await call("POST", base + path, headers: ["Content-Type": "application/json"], body: #"{"vm":"web","to":"auto","id":"x","action":"enter"}"#).0 == 401)
            }
            // Nothing reached the agent but the dashboard's own subscription to its events.
            #expect(standIn.requests.withLockedValue { $0 }.filter { $0 != "events" }.isEmpty)
            let (status, _, page) = try await call("GET", base + "/login")
            #expect(status == 200 && page.contains("name=\"token\""))

            // A wrong token is refused; the right one sets an HttpOnly, SameSite=Strict cookie that opens the page.
            #expect(try await call("POST", base + "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"], body: "token=nope").0 == 401)
            let (loggedIn, headers, _) = try await call("POST", base + "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"],
                                                        body: "token=\(Self.token)")
            let cookie = headers["set-cookie"] ?? ""
            #expect(loggedIn == 303 && cookie.hasPrefix("hostmesh_dashboard=\(Self.token);") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
            let (opened, pageHeaders, dashboard) = try await call("GET", base + "/", headers: ["Cookie": "other=1; hostmesh_dashboard=\(Self.token)"])
            #expect(opened == 200 && dashboard.contains("<script src=\"/app.js\""))
            #expect(pageHeaders["content-security-policy"]?.contains("script-src 'self'") == true)
        }
    }

    @Test func theStateIsWhatTheControlSocketAnswersAndUnansweredPartsAreNamed() async throws {
        try await withDashboard { base, _ in
            let (status, _, body) = try await call("GET", base + "/api/state", headers: Self.bearer)
            #expect(status == 200)
            let snapshot = try JSONDecoder().decode(MeshSnapshot.self, from: Data(body.utf8))
            #expect(snapshot.host == "node-a" && snapshot.members.map(\.host) == ["node-a", "<b>node-b</b>"])
            #expect(snapshot.vms.map(\.name) == ["web"] && snapshot.localVMs.map(\.state) == ["running"])
            #expect(snapshot.drs == nil && snapshot.problems.contains { $0.contains("DRS is resting") })
        }
    }

    @Test func actionsArePostsWithJSONFromTheDashboardItselfAndGoThroughTheControlMethods() async throws {
        try await withDashboard { base, standIn in
            #expect(try await call("GET", base + "/api/migrate", headers: Self.bearer).0 == 404) // a GET never acts
            #expect(try await call("POST", base + "/api/migrate", headers: Self.bearer.merging(["Content-Type": "application/x-www-form-urlencoded"]) { $1 },
                                   body: "vm=web&to=auto").0 == 415)
            #expect(try await call("POST", base + "/api/migrate", headers: Self.json.merging(["Origin": "http://evil.example"]) { $1 },
                                   body: #"{"vm":"web","to":"auto"}"#).0 == 403)
            #expect(!standIn.requests.withLockedValue { $0 }.contains { $0.hasPrefix("migrate") })

            let (accepted, _, answer) = try await call("POST", base + "/api/migrate", headers: Self.json, body: #"{"vm":"web","to":"node-b"}"#)
            #expect(accepted == 202 && answer.contains("op-1"))
            var finished: DashboardOperation?
            for _ in 0..<100 where finished == nil {
                let state = try JSONDecoder().decode(MeshSnapshot.self, from: Data(try await call("GET", base + "/api/state", headers: Self.bearer).2.utf8))
                finished = state.operations.first { $0.state != "running" }
                if finished == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(finished?.state == "done" && finished?.report?.downtimeMs == 25 && finished?.progress?.percent == 40)
            #expect(standIn.requests.withLockedValue { $0 }.contains("migrate web to node-b"))

            // The agent's refusal comes back with its message and an HTTP status for its code.
            let (refused, _, why) = try await call("POST", base + "/api/drs/apply", headers: Self.json, body: #"{"id":"deadbeef"}"#)
            #expect(refused == 404 && why.contains("no recommendation has id deadbeef"))
            let (entered, _, maintenance) = try await call("POST", base + "/api/maintenance", headers: Self.json, body: #"{"action":"enter","host":"node-b"}"#)
            #expect(entered == 200 && maintenance.contains("evacuating"))
            #expect(try await call("POST", base + "/api/maintenance", headers: Self.json, body: #"{"action":"reboot"}"#).0 == 400)
        }
    }

    /// A migration the page did not start (DRS, the command line, a schedule) is shown too: the
    /// dashboard follows the agent's `events` and keeps each migration's phase and last progress.
    @Test func migrationsStartedElsewhereAreFollowedFromTheAgentsEvents() async throws {
        try await withDashboard { base, standIn in
            var live: LiveMigration?
            for _ in 0..<100 {
                let state = try JSONDecoder().decode(MeshSnapshot.self, from: Data(try await call("GET", base + "/api/state", headers: Self.bearer).2.utf8))
                live = state.live.first { $0.migration == "m-1" }
                if live?.ended == true { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(live == LiveMigration(migration: "m-1", vm: "web", role: "source", peer: "node-b", phase: "done",
                                          progress: MigrationProgressUpdate(phase: "transfer", percent: 70, mbPerSecond: 300, dirtyMBPerSecond: 2,
                                                                            iteration: 1, rung: "normal"),
                                          ended: true, time: "2026-01-01T00:00:00.300Z"))
            #expect(standIn.requests.withLockedValue { $0 }.contains("events"))
            // Never a migrate: the dashboard only watched.
            #expect(!standIn.requests.withLockedValue { $0 }.contains { $0.hasPrefix("migrate") })
        }
    }
}

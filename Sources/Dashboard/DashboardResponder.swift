import ControlAPI
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The dashboard's HTTP routes (README "Web dashboard").
///
/// Only `GET /login`, `POST /login` and `GET /style.css` (a form and its stylesheet: no data) are
/// answered without the token; every other request without a valid token is refused with 401.
/// The token travels as the `hostmesh_dashboard` cookie (HttpOnly, SameSite=Strict) that
/// `POST /login` sets, or as `Authorization: Bearer TOKEN` for scripts. Actions are POSTs with a
/// JSON body (a cross-site form cannot send one), and a POST whose `Origin` is not this server is
/// refused (403). Every action goes through the control socket: the checks are the command line's.
struct DashboardResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let token: String
    let control: ControlClient
    let hub: DashboardHub
    let reader: MeshReader
    let logger: Logger

    static let cookieName = "hostmesh_dashboard"
    /// Largest request body read (a login form or an action's JSON).
    static let maxBody = 16 * 1024

    func respond(to request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        switch (request.method, path) {
        case (.get, "/login"):
            return Pages.html(.ok, Pages.login(message: nil))
        case (.post, "/login"):
            return try await login(request)
        case (.get, "/style.css"):
            return Pages.asset(Assets.css, type: "text/css; charset=utf-8")
        default:
            break
        }
        guard authorized(request) else {
            logger.debug("dashboard request refused: no valid token", metadata: ["http.path": "\(path)"])
            if request.method == .get, path == "/" {
                return Pages.html(.unauthorized, Pages.login(message: "This page needs the dashboard token."))
            }
            return Pages.json(.unauthorized, ["error": "a valid dashboard token is needed: log in at /login with the output of `hostmesh dashboard token`"])
        }
        switch (request.method, path) {
        case (.get, "/"):
            return Pages.html(.ok, Pages.dashboard())
        case (.get, "/app.js"):
            return Pages.asset(Assets.script, type: "text/javascript; charset=utf-8")
        case (.get, "/events"):
            return await events()
        case (.get, "/api/state"):
            return Pages.json(.ok, await reader.snapshot(operations: await hub.currentOperations, live: await hub.liveMigrations))
        case (.post, "/logout"):
            var response = Pages.redirect("/login")
            response.headers[.setCookie] = "\(Self.cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
            return response
        case (.post, _) where path.hasPrefix("/api/"):
            if let refusal = Self.crossSiteRefusal(request) { return refusal }
            return try await action(path, request)
        default:
            return Pages.json(.notFound, ["error": "no such page: \(path)"])
        }
    }

    /// True when the request carries the token, as the cookie or as a bearer token.
    func authorized(_ request: Request) -> Bool {
        if let header = request.headers[.authorization], header.hasPrefix("Bearer ") {
            return DashboardToken.matches(header.dropFirst("Bearer ".count), token)
        }
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                if trimmed.hasPrefix(Self.cookieName + "="), DashboardToken.matches(trimmed.dropFirst(Self.cookieName.count + 1), token) {
                    return true
                }
            }
        }
        return false
    }

    /// A POST from another site's page (its `Origin` is not this server), or without a JSON body.
    static func crossSiteRefusal(_ request: Request) -> Response? {
        if let origin = request.headers[.origin], let authority = request.head.authority,
           origin != "http://\(authority)", origin != "https://\(authority)" {
            return Pages.json(.forbidden, ["error": "actions are taken only from the dashboard's own pages (Origin \(origin))"])
        }
        guard request.headers[.contentType]?.hasPrefix("application/json") == true else {
            return Pages.json(.unsupportedMediaType, ["error": "actions take a JSON body (Content-Type: application/json)"])
        }
        return nil
    }

    private func login(_ request: Request) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: Self.maxBody)
        let form = String(buffer: body)
        var components = URLComponents()
        components.percentEncodedQuery = form.replacingOccurrences(of: "+", with: "%20")
        let given = components.queryItems?.first { $0.name == "token" }?.value?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard DashboardToken.matches(given, token) else {
            logger.notice("dashboard login refused: wrong token")
            return Pages.html(.unauthorized, Pages.login(message: "That is not this agent's dashboard token."))
        }
        var response = Pages.redirect("/")
        response.headers[.setCookie] = "\(Self.cookieName)=\(token); Path=/; HttpOnly; SameSite=Strict"
        return response
    }

    /// `text/event-stream`: the state every second and each operation as it changes, until the
    /// page goes away or the dashboard stops.
    private func events() async -> Response {
        let (id, stream) = await hub.subscribe()
        let hub = self.hub
        var headers = Pages.securityHeaders
        headers[.contentType] = "text/event-stream"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            do {
                // Sent at once so the browser knows the stream is open, and how soon to come back.
                try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
                // A page that went away fails the next write (a state event comes every second).
                for await event in stream {
                    try await writer.write(ByteBuffer(string: event.framed))
                }
            } catch {
                await hub.unsubscribe(id)
                throw error
            }
            await hub.unsubscribe(id)
            try await writer.finish(nil)
        })
    }

    private func action(_ path: String, _ request: Request) async throws -> Response {
        var request = request
        let body = Data(buffer: try await request.collectBody(upTo: Self.maxBody))
        do {
            switch path {
            case "/api/migrate":
                let p = try JSONDecoder().decode(MigrateAction.self, from: body)
                let destination = try p.destination()
                let id = await hub.startMigration(vm: p.vm, to: destination)
                return Pages.json(.accepted, ["operation": id])
            case "/api/drs/apply":
                let p = try JSONDecoder().decode(DRSTypes.Apply.self, from: body)
                return Pages.json(.ok, try await control.call("drs.apply", p, as: ControlTypes.Text.self))
            case "/api/maintenance":
                let p = try JSONDecoder().decode(DRSTypes.Maintenance.self, from: body)
                return Pages.json(.ok, try await control.call("host.maintenance", p, as: DRSTypes.MaintenanceStatus.self))
            default:
                return Pages.json(.notFound, ["error": "no such action: \(path)"])
            }
        } catch let error as ControlError {
            return Pages.json(Self.status(of: error), ["error": error.message, "code": error.code])
        } catch {
            return Pages.json(.badRequest, ["error": "the request is not understood: \(error)"])
        }
    }

    /// The HTTP status of a control error.
    static func status(of error: ControlError) -> HTTPResponse.Status {
        switch error.code {
        case "bad_request": return .badRequest
        case "not_found": return .notFound
        case "conflict": return .conflict
        case "unavailable": return .serviceUnavailable
        default: return .internalServerError
        }
    }
}

/// `POST /api/migrate`: `{vm, to}`, `to` being `auto` or a member's host id (as `--to`).
struct MigrateAction: Decodable {
    var vm: String
    var to: String

    func destination() throws -> MigrationDestination {
        guard !vm.isEmpty else { throw ControlError.badRequest("choose a VM to migrate") }
        do { return try MigrationDestination(parsing: to.isEmpty ? "auto" : to) } catch {
            throw ControlError.badRequest("\(error)")
        }
    }
}

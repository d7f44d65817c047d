import Foundation
import HTTPTypes
import Hummingbird

/// The dashboard's HTML pages and the headers every answer carries.
enum Pages {
    /// No framing, no sniffing, no referrer, no caching, and a policy that runs only the
    /// dashboard's own script and stylesheet (no inline script: injected markup cannot run).
    static var securityHeaders: HTTPFields {
        [
            .contentSecurityPolicy: "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            .cacheControl: "no-store",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("X-Frame-Options")!: "DENY",
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
        ]
    }

    static func html(_ status: HTTPResponse.Status, _ body: String) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func asset(_ body: String, type: String) -> Response {
        var headers = securityHeaders
        headers[.contentType] = type
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(data: DashboardJSON.data(value))))
    }

    static func redirect(_ location: String) -> Response {
        var headers = securityHeaders
        headers[.location] = location
        return Response(status: .seeOther, headers: headers)
    }

    /// The login form; `message` (escaped) says why it is shown.
    static func login(message: String?) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Hostmesh dashboard: log in</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <link rel="stylesheet" href="/style.css"></head>
        <body class="login"><main>
        <h1>Hostmesh</h1>
        \(message.map { "<p class=\"refused\" id=\"refused\">\(HTMLEscape.text($0))</p>" } ?? "")
        <form method="post" action="/login">
        <label for="token">Dashboard token</label>
        <input id="token" name="token" type="password" autocomplete="off" required>
        <button id="login" type="submit">Log in</button>
        </form>
        <p class="hint">On the host: <code>hostmesh dashboard token</code></p>
        </main></body></html>
        """
    }

    /// The dashboard's frame; `app.js` fills it from the event stream.
    static func dashboard() -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Hostmesh dashboard</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <link rel="stylesheet" href="/style.css"><script src="/app.js" defer></script></head>
        <body>
        <header><h1>Hostmesh</h1><span id="host"></span><span id="live" class="live off">connecting</span>
        <form method="post" action="/logout"><button type="submit" class="quiet">Log out</button></form></header>
        <p id="message" class="message" hidden></p>
        <ul id="problems" class="problems"></ul>
        <section><h2>Mesh</h2><div id="members" class="cards"></div></section>
        <section><h2>VMs per host</h2><div id="vms"></div></section>
        <section><h2>Migrations</h2><div id="operations"></div>
        <h3>This host's migrations, wherever started (command line, DRS, maintenance, schedules)</h3><div id="live-migrations"></div></section>
        <section><h2>DRS</h2><p id="drs"></p><table id="recommendations"></table></section>
        <section><h2>Maintenance</h2><table id="maintenance"></table></section>
        <section><h2>History</h2><table id="history"></table></section>
        </body></html>
        """
    }
}

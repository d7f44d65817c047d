import ControlAPI
import Foundation

/// A real headless Chromium driven over WebDriver's HTTP protocol (W3C): Debian's `chromium`
/// and `chromium-driver`, started per test and killed with it.
final class WebDriver: @unchecked Sendable {
    // @unchecked Sendable is safe: all stored properties are immutable after init.
    static let chromedriver = "/usr/bin/chromedriver"
    static let chromium = "/usr/bin/chromium"
    static var available: Bool {
        FileManager.default.isExecutableFile(atPath: chromedriver) && FileManager.default.isExecutableFile(atPath: chromium)
    }
    /// The W3C key of an element reference in WebDriver answers.
    static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

    let pid: pid_t
    let base: URL
    let session: String

    private init(pid: pid_t, base: URL, session: String) {
        self.pid = pid
        self.base = base
        self.session = session
    }

    /// Starts chromedriver on a free loopback port and opens a headless Chromium session whose
    /// profile lives in `directory` (so the mesh's cleanup, which kills every process naming its
    /// directory, ends the browser too).
    static func start(directory: String) async throws -> WebDriver {
        let port = try freePort()
        let pid = try spawn(chromedriver, ["--port=\(port)", "--allowed-ips=127.0.0.1"], logPath: directory + "/chromedriver.log")
        let base = URL(string: "http://127.0.0.1:\(port)")!
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            // Not up yet: the connection is refused until chromedriver listens.
            if let (_, status) = try? await http("GET", base.appendingPathComponent("status")), status == 200 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let capabilities: [String: Any] = ["capabilities": ["alwaysMatch": [
            "browserName": "chrome",
            "goog:chromeOptions": [
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1250",
                         "--user-data-dir=\(directory)/chromium-profile", "--no-first-run", "--disable-extensions"],
            ],
        ]]]
        let (answer, status) = try await http("POST", base.appendingPathComponent("session"), json: capabilities)
        guard status == 200, let value = answer["value"] as? [String: Any], let session = value["sessionId"] as? String else {
            Foundation.kill(pid, SIGKILL)
            throw ControlError.failed("chromedriver did not open a session (HTTP \(status)): \(answer)")
        }
        return WebDriver(pid: pid, base: base, session: session)
    }

    func quit() async {
        // Best effort: the process is killed next either way.
        _ = try? await Self.http("DELETE", base.appendingPathComponent("session/\(session)"))
        Foundation.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    // MARK: - Commands

    func navigate(_ url: String) async throws { _ = try await command("POST", "url", ["url": url]) }

    /// The element matching a CSS selector, or nil.
    func find(_ selector: String) async throws -> String? {
        let (answer, status) = try await Self.http("POST", base.appendingPathComponent("session/\(session)/element"),
                                                   json: ["using": "css selector", "value": selector])
        guard status == 200, let value = answer["value"] as? [String: Any] else { return nil }
        return value[Self.elementKey] as? String
    }

    /// Waits (up to `timeout`) for an element matching `selector`.
    func wait(for selector: String, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let element = try await find(selector) { return element }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ControlError.failed("no element \(selector) on the page after \(timeout); the page says: \(try await text("body"))")
    }

    func click(_ element: String) async throws { _ = try await command("POST", "element/\(element)/click", [:]) }
    func type(_ element: String, _ text: String) async throws { _ = try await command("POST", "element/\(element)/value", ["text": text]) }

    func text(of element: String) async throws -> String {
        try await command("GET", "element/\(element)/text", nil) as? String ?? ""
    }

    /// The text of the first element matching `selector` ("" when there is none), read in one step
    /// in the page: the dashboard re-renders on every pushed state, so an element found by one
    /// WebDriver call can be gone ("stale element reference") by the next.
    func text(_ selector: String) async throws -> String {
        try await script("const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", [selector]) as? String ?? ""
    }

    /// Waits for an element matching `selector` and clicks it as a user would; when the page
    /// re-rendered between the find and the click (a stale element), finds it again.
    func click(selector: String, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let element = try await wait(for: selector, timeout: timeout)
            do {
                try await click(element)
                return
            } catch let error as ControlError where "\(error)".contains("stale element") && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    func deleteCookies() async throws { _ = try await command("DELETE", "cookie", nil) }

    /// A PNG of the viewport.
    func screenshot() async throws -> Data {
        guard let base64 = try await command("GET", "screenshot", nil) as? String, let data = Data(base64Encoded: base64) else {
            throw ControlError.failed("chromedriver sent no screenshot")
        }
        return data
    }

    /// Runs a script in the page and returns its result.
    func script(_ source: String, _ arguments: [Any] = []) async throws -> Any? {
        try await command("POST", "execute/sync", ["script": source, "args": arguments])
    }

    private func command(_ method: String, _ path: String, _ body: [String: Any]?) async throws -> Any? {
        let (answer, status) = try await Self.http(method, base.appendingPathComponent("session/\(session)/\(path)"), json: body)
        guard status == 200 else { throw ControlError.failed("WebDriver \(method) \(path): HTTP \(status): \(answer)") }
        return answer["value"]
    }

    // MARK: - HTTP

    /// One HTTP/1.1 exchange over a plain socket (`Connection: close`), on a thread of its own.
    /// Not URLSession: Linux's FoundationNetworking refuses chromedriver's answers, whose header
    /// lines have no space after the colon ("Failed writing header").
    static func http(_ method: String, _ url: URL, json: [String: Any]? = nil) async throws -> ([String: Any], Int) {
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        var head = "\(method) \(url.path) HTTP/1.1\r\nHost: \(url.host ?? "127.0.0.1"):\(url.port ?? 80)\r\nConnection: close\r\n"
        if json != nil { head += "Content-Type: application/json\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        let request = Data(head.utf8) + body
        let port = url.port ?? 80
        let raw: Data = try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try exchange(request, port: port) }) }.start()
        }
        guard let split = raw.range(of: Data("\r\n\r\n".utf8)) else { throw ControlError.failed("no HTTP answer from \(url)") }
        let statusLine = String(decoding: raw[..<split.lowerBound], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let status = statusLine.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        let content = raw[split.upperBound...]
        let object = (try? JSONSerialization.jsonObject(with: content)) as? [String: Any] ?? ["raw": String(decoding: content, as: UTF8.self)] // not JSON: kept as text
        return (object, status)
    }

    /// Sends `request` to 127.0.0.1:`port` and reads the answer to the end of the connection.
    private static func exchange(_ request: Data, port: Int) throws -> Data {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ControlError.failed("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { throw ControlError.failed("connect to port \(port): \(String(cString: strerror(errno)))") }
        var sent = 0
        try request.withUnsafeBytes { bytes in
            while sent < bytes.count {
                let n = send(fd, bytes.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw ControlError.failed("send: \(String(cString: strerror(errno)))") }
                sent += n
            }
        }
        // Read to the end of the body that Content-Length announces: chromedriver keeps the
        // connection open despite `Connection: close`.
        var answer = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let split = answer.range(of: Data("\r\n\r\n".utf8)) {
                let head = String(decoding: answer[..<split.lowerBound], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
                if let length, answer.count - split.upperBound >= length { return answer.prefix(split.upperBound + length) }
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            answer.append(contentsOf: buffer[0..<n])
        }
        return answer
    }

    /// A port nothing listens on now (bound once, then released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ControlError.failed("cannot find a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

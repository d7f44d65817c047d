import ControlAPI
import Foundation

/// Runs `body` on a thread of its own: blocking process and socket I/O must not hold one of the
/// cooperative pool's two threads.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// The `hostmesh` command line, run against an agent's state directory with `--json`.
enum CLI {
    /// Runs `hostmesh ARGUMENTS --json --state-dir DIR`; its output, which must exit 0.
    static func run(_ arguments: [String], _ agent: AgentProcess) async throws -> String {
        let all = arguments + ["--json", "--state-dir", agent.stateDirectory]
        let (status, output) = await onOwnThread {
            do { return try runTool(AgentProcess.binary, all) } catch { return (-1, "\(error)") }
        }
        guard status == 0 else { throw ControlError.failed("hostmesh \(all.joined(separator: " ")) exited \(status): \(output)") }
        return output
    }

    /// The output as one JSON object.
    static func json(_ arguments: [String], _ agent: AgentProcess) async throws -> [String: Any] {
        let output = try await run(arguments, agent)
        guard let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] else {
            throw ControlError.failed("hostmesh \(arguments.joined(separator: " ")) --json printed no JSON object: \(output)")
        }
        return object
    }

    /// The output as one JSON array of objects.
    static func jsonArray(_ arguments: [String], _ agent: AgentProcess) async throws -> [[String: Any]] {
        let output = try await run(arguments, agent)
        guard let rows = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] else {
            throw ControlError.failed("hostmesh \(arguments.joined(separator: " ")) --json printed no JSON array: \(output)")
        }
        return rows
    }
}

/// One scrape of a Prometheus text page: each sample by name and labels.
struct Scrape {
    let text: String
    let samples: [(name: String, labels: [String: String], value: Double)]

    static func read(_ url: String) async throws -> Scrape {
        let text = try await httpGet(url)
        return Scrape(text: text)
    }

    init(text: String) {
        self.text = text
        samples = text.split(whereSeparator: \.isNewline).compactMap { line in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            let series = line[..<space]
            guard let open = series.firstIndex(of: "{") else { return (String(series), [:], value) }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { labels[String(parts[0])] = String(parts[1].dropFirst().dropLast()) }
            }
            return (String(series[..<open]), labels, value)
        }
    }

    /// The value of the sample `name` with exactly these labels.
    func value(_ name: String, _ labels: [String: String]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}

/// What the kernel says of a process: CPU time (user + system) and resident memory.
struct ProcStat {
    let cpuSeconds: Double
    let residentBytes: Double

    init?(pid: Int32) {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]),
              let rss = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })?.split(separator: " ", omittingEmptySubsequences: true),
              rss.count >= 2, let kib = Double(rss[rss.count - 2]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        cpuSeconds = (user + system) / ticks
        residentBytes = kib * 1024
    }
}

/// A client of a server-sent event stream over a plain socket (URLSession cannot stream here).
struct EventStreamReader: Sendable {
    /// `host:port`.
    let address: String
    let path: String
    let token: String

    /// Reads the stream until `done` accepts what was read or `limit` passes; what was read.
    func read(for limit: Duration, until done: @escaping @Sendable (String) -> Bool) async -> String {
        let address = self.address, path = self.path, token = self.token
        return await onOwnThread {
            let parts = address.split(separator: ":")
            guard parts.count == 2, let port = UInt16(parts[1]) else { return "bad address \(address)" }
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return "socket: \(errno)" }
            defer { close(fd) }
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            inet_pton(AF_INET, String(parts[0]), &sin.sin_addr)
            let connected = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard connected == 0 else { return "connect: \(errno)" }
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let request = "GET \(path) HTTP/1.1\r\nHost: \(address)\r\nAuthorization: Bearer \(token)\r\nAccept: text/event-stream\r\n\r\n"
            _ = request.withCString { send(fd, $0, strlen($0), 0) }
            var received = Data()
            var buffer = [UInt8](repeating: 0, count: 65536)
            let deadline = ContinuousClock.now + limit
            while ContinuousClock.now < deadline {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n == 0 { break }
                if n > 0 {
                    received.append(contentsOf: buffer[0..<n])
                    if done(String(decoding: received, as: UTF8.self)) { break }
                }
            }
            return String(decoding: received, as: UTF8.self)
        }
    }
}

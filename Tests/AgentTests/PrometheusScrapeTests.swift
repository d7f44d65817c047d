import Agent
import ControlAPI
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hypervisor
import Testing

/// Issue 16 item 1: a real Prometheus (Debian's `prometheus`) scrapes two real agents while a
/// VM migrates between them, and its query API shows the migration counter and the downtime
/// histogram moved.
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct PrometheusScrapeTests {
    static let prometheus = "/usr/bin/prometheus"

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: prometheus), "install Debian's prometheus package (make deps does)"))
    func prometheusSeesTheMigrationCounterAndDowntimeHistogramMove() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: ["--metrics-listen", "127.0.0.1:0"])
        let b = try await mesh.start("node-b", arguments: ["--metrics-listen", "127.0.0.1:0"])
        let targets = [try metricsAddress(a), try metricsAddress(b)]

        // Our endpoint as Prometheus will read it.
        let page = try await httpGet("http://\(targets[0])/metrics")
        #expect(page.contains("# TYPE hostmesh_members gauge"), "\(page.prefix(2000))")
        #expect(try await httpStatus("http://\(targets[0])/nothing") == 404)

        let server = try PrometheusServer(root: mesh.root + "/prometheus", targets: targets)
        defer { server.stop() }
        try await server.waitUntil("both agents scraped", #"count(up{job="hostmesh"} == 1)"#) { $0 == 2 }
        // Nothing has migrated yet: no migration series at all, or zero.
        #expect(try await server.value(#"sum(hostmesh_migrations_total{result="completed"})"#) ?? 0 == 0)

        let e2e = MigrationEndToEndTests()
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: e2e.spec("scraped"), start: true), as: VMInfo.self)
        _ = try await e2e.heartbeat(a, "scraped", after: 1)
        try await server.waitUntil("a VM running on node-a", #"hostmesh_vms{state="running",instance="\#(targets[0])"}"#) { $0 == 1 }
        let report = try await e2e.migrate("scraped", from: a, to: b)

        try await server.waitUntil("the migration counted", #"sum(hostmesh_migrations_total{role="source",result="completed"})"#) { $0 == 1 }
        try await server.waitUntil("the downtime histogram's count", #"sum(hostmesh_migration_downtime_seconds_count)"#) { $0 == 1 }
        let downtime = try #require(try await server.value(#"sum(hostmesh_migration_downtime_seconds_sum)"#))
        #expect(abs(downtime * 1000 - Double(report.downtimeMs)) < 1.5, "Prometheus says \(downtime) s, the report \(report.downtimeMs) ms")
        try await server.waitUntil("the bytes moved", #"sum(hostmesh_migration_bytes_total)"#) { $0 == Double(report.transferredBytes) }
        try await server.waitUntil("the VM counted on node-b", #"hostmesh_vms{state="running",instance="\#(targets[1])"}"#) { $0 == 1 }
        // Channels were made (control and migration streams) and journal writes timed.
        try await server.waitUntil("handshakes counted", #"sum(hostmesh_channel_handshakes_total)"#) { $0 >= 2 }
        try await server.waitUntil("journal writes timed", #"sum(hostmesh_journal_write_seconds_count)"#) { $0 >= 4 }
    }

    /// The metrics address an agent logged ("metrics.listen=HOST:PORT").
    func metricsAddress(_ agent: AgentProcess) throws -> String {
        let log = agent.log
        guard let range = log.range(of: "metrics.listen=") else { throw ControlError.failed("\(agent.hostID) logged no metrics address:\n\(log.suffix(2000))") }
        return String(log[range.upperBound...].prefix { !$0.isWhitespace })
    }
}

/// GETs `url`; the body as text.
func httpGet(_ url: String) async throws -> String {
    let (data, _) = try await URLSession.shared.data(from: URL(string: url)!)
    return String(decoding: data, as: UTF8.self)
}

/// GETs `url`; the status code.
func httpStatus(_ url: String) async throws -> Int {
    let (_, response) = try await URLSession.shared.data(from: URL(string: url)!)
    return (response as? HTTPURLResponse)?.statusCode ?? 0
}

/// A real Prometheus server scraping `targets` every second, with its data in `root`.
final class PrometheusServer: Sendable {
    let pid: pid_t
    let address: String
    let logPath: String

    init(root: String, targets: [String]) throws {
        try FileManager.default.createDirectory(atPath: root + "/data", withIntermediateDirectories: true)
        let config = """
        global:
          scrape_interval: 1s
          scrape_timeout: 900ms
        scrape_configs:
          - job_name: hostmesh
            static_configs:
              - targets: [\(targets.map { "\"\($0)\"" }.joined(separator: ", "))]
        """
        try config.write(toFile: root + "/prometheus.yml", atomically: true, encoding: .utf8)
        address = "127.0.0.1:\(try freeTCPPort())"
        logPath = root + "/prometheus.log"
        pid = try spawn(PrometheusScrapeTests.prometheus, ["--config.file=\(root)/prometheus.yml", "--storage.tsdb.path=\(root)/data",
                                                           "--web.listen-address=\(address)", "--log.level=warn"], logPath: logPath)
    }

    func stop() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    /// The value of an instant query that yields one sample, nil when it yields none.
    func value(_ query: String) async throws -> Double? {
        var components = URLComponents(string: "http://\(address)/api/v1/query")!
        components.queryItems = [URLQueryItem(name: "query", value: query)]
        let (data, _) = try await URLSession.shared.data(from: components.url!)
        struct Answer: Decodable {
            struct Data: Decodable {
                struct Sample: Decodable { var value: [Value] }
                var result: [Sample]
            }
            enum Value: Decodable {
                case time(Double), text(String)
                init(from decoder: any Decoder) throws {
                    let c = try decoder.singleValueContainer()
                    if let t = try? c.decode(Double.self) { self = .time(t) } else { self = .text(try c.decode(String.self)) }
                }
            }
            var status: String
            var data: Data
        }
        let answer = try JSONDecoder().decode(Answer.self, from: data)
        guard answer.status == "success" else { throw ControlError.failed("Prometheus: \(String(decoding: data, as: UTF8.self))") }
        guard let sample = answer.data.result.first, sample.value.count == 2, case .text(let text) = sample.value[1] else { return nil }
        return Double(text)
    }

    /// Waits (up to 30 s) until `query` yields a value `check` accepts.
    func waitUntil(_ what: String, _ query: String, check: (Double) -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        var last: Double?
        while ContinuousClock.now < deadline {
            // Not up yet (connection refused) counts as no value.
            last = (try? await value(query)) ?? nil
            if let last, check(last) { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        throw ControlError.failed("Prometheus never showed \(what): \(query) = \(last.map { "\($0)" } ?? "no sample")\n\(log.suffix(1500))")
    }
}

/// A TCP port free on loopback a moment ago.
func freeTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ControlError.failed("socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ControlError.failed("bind: \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

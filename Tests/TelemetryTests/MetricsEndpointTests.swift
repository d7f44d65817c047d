import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import NIOConcurrencyHelpers
import Prometheus
import Telemetry
import Testing

/// The scrape endpoint over a real socket, and the counter mirror.
struct MetricsEndpointTests {
    @Test func servesTheRegistryAfterRefreshingIt() async throws {
        let registry = PrometheusCollectorRegistry()
        let refreshes = NIOLockedValueBox(0)
        let endpoint = try await MetricsEndpoint.bind(host: "127.0.0.1", port: 0, registry: registry, logger: Logger(label: "test")) {
            let n = refreshes.withLockedValue { $0 += 1; return $0 }
            registry.makeGauge(descriptor: .init(metricName: "test_refreshes", unitName: "", helpText: "Refreshes.")).set(Double(n))
        }
        let port = try #require(endpoint.localAddress?.port)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await endpoint.run() }
            let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
            let http = try #require(response as? HTTPURLResponse)
            #expect(http.statusCode == 200)
            #expect(http.value(forHTTPHeaderField: "Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = String(decoding: data, as: UTF8.self)
            #expect(text.contains("# TYPE test_refreshes gauge"))
            #expect(text.contains("test_refreshes 1"), "\(text)")
            let (_, missing) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/other")!)
            #expect((missing as? HTTPURLResponse)?.statusCode == 404)
            var post = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/metrics")!)
            post.httpMethod = "POST"
            let (_, refused) = try await URLSession.shared.data(for: post)
            #expect((refused as? HTTPURLResponse)?.statusCode == 405)
            group.cancelAll()
        }
        #expect(refreshes.withLockedValue { $0 } == 1)
    }

    @Test func aMirroredCounterGrowsByTheDifferenceAndNeverGoesDown() {
        let registry = PrometheusCollectorRegistry()
        let mirror = CounterMirror(registry: registry)
        mirror.set("test_frames_total", [("direction", "in")], to: 10, help: "Frames.")
        mirror.set("test_frames_total", [("direction", "in")], to: 25, help: "Frames.")
        #expect(registry.emitToString().contains(#"test_frames_total{direction="in"} 25"#))
        // The source restarted (or an older reading came late): nothing moves.
        mirror.set("test_frames_total", [("direction", "in")], to: 3, help: "Frames.")
        #expect(registry.emitToString().contains(#"test_frames_total{direction="in"} 25"#))
        mirror.set("test_frames_total", [("direction", "in")], to: 30, help: "Frames.")
        #expect(registry.emitToString().contains(#"test_frames_total{direction="in"} 30"#), "\(registry.emitToString())")
    }
}

public import Logging
public import NIOCore
import NIOHTTP1
import NIOPosix
public import Prometheus
public import ServiceLifecycle

/// The Prometheus scrape endpoint: `GET /metrics` over plain HTTP/1.1 (keep-alive), answered
/// with the registry in Prometheus's text format (version 0.0.4). Before each answer it calls
/// `refresh`, which sets the figures read at scrape time (members, VMs, switch ports, …).
/// Any other path is 404, any other method 405. At most `maximumConnections` are served at
/// once; more are closed at once (a scraper needs one).
///
/// Bound by `bind`, so a port in use fails the agent's start, not its first scrape; served by
/// `run` until graceful shutdown or cancellation.
public final class MetricsEndpoint: Service, Sendable {
    /// Connections served at once.
    public static let maximumConnections = 16

    private let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    private let registry: PrometheusCollectorRegistry
    private let refresh: @Sendable () async -> Void
    private let logger: Logger

    /// The bound address (the real port when asked for port 0).
    public var localAddress: SocketAddress? { server.channel.localAddress }

    private init(server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>,
                 registry: PrometheusCollectorRegistry, refresh: @escaping @Sendable () async -> Void, logger: Logger) {
        self.server = server
        self.registry = registry
        self.refresh = refresh
        self.logger = logger
    }

    /// Binds `host:port` (TCP). Throws when the address cannot be bound.
    public static func bind(host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger,
                            refresh: @escaping @Sendable () async -> Void = {}) async throws -> MetricsEndpoint {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        // "metrics.listen=HOST:PORT", the real port when asked for 0.
        logger.info("metrics endpoint listening", metadata: ["metrics.listen": "\(host):\(server.channel.localAddress?.port ?? port)"])
        return MetricsEndpoint(server: server, registry: registry, refresh: refresh, logger: logger)
    }

    /// Serves scrapes until graceful shutdown or cancellation, then closes the listener.
    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await self.serve()
        }
    }

    private func serve() async throws {
        let active = ConnectionCount()
        try await server.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in inbound {
                    guard active.claim(below: Self.maximumConnections) else {
                        // Over the cap: closing the connection is the whole answer; a close error changes nothing.
                        try? await connection.channel.close()
                        continue
                    }
                    group.addTask {
                        defer { active.release() }
                        do { try await self.serve(connection) } catch {
                            self.logger.debug("metrics connection ended", metadata: ["error": "\(error)"])
                        }
                    }
                }
            }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var request: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let head): request = head
                case .body: continue // a scrape has no body; any is ignored
                case .end:
                    guard let head = request else { return }
                    request = nil
                    try await answer(head, outbound)
                    if !head.isKeepAlive { return }
                }
            }
        }
    }

    private func answer(_ head: HTTPRequestHead, _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let status: HTTPResponseStatus
        let body: [UInt8]
        var contentType = "text/plain; charset=utf-8"
        switch (head.method, path) {
        case (.GET, "/metrics"), (.HEAD, "/metrics"):
            await refresh()
            status = .ok
            body = registry.emitToBuffer()
            contentType = "text/plain; version=0.0.4; charset=utf-8"
        case (_, "/metrics"):
            status = .methodNotAllowed
            body = Array("only GET /metrics\n".utf8)
        default:
            status = .notFound
            body = Array("not found: metrics are at /metrics\n".utf8)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.count)")
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        try await outbound.write(.head(HTTPResponseHead(version: head.version, status: status, headers: headers)))
        if head.method != .HEAD { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        try await outbound.write(.end(nil))
    }
}

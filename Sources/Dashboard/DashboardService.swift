public import ControlAPI
import Foundation
import Hummingbird
import Hypervisor
public import Logging
import NIOCore
public import ServiceLifecycle

/// The web dashboard (README "Web dashboard"): an HTTP server on `listen` (Hummingbird), a loop
/// that reads the mesh from the local agent every `interval` while a page listens and pushes it
/// as a server-sent event, and the migrations started from the page. It reaches the agent only
/// through the control socket, so every action takes the same checks as `hostmesh`.
public struct DashboardService: Service {
    /// Where the server listens (localhost unless configured), the control socket it acts
    /// through, the token it requires, and how often the page's state is refreshed.
    public struct Settings: Sendable {
        public var listen: HostPort
        public var controlSocket: String
        public var token: String
        public var interval: Duration = .seconds(1)

        public init(listen: HostPort, controlSocket: String, token: String) {
            self.listen = listen
            self.controlSocket = controlSocket
            self.token = token
        }
    }

    private let settings: Settings
    private let logger: Logger
    private let onListening: @Sendable (HostPort) -> Void

    /// A dashboard with `settings`; `onListening` is told the bound address (the real port when
    /// configured with 0).
    public init(settings: Settings, logger: Logger, onListening: @escaping @Sendable (HostPort) -> Void = { _ in }) {
        self.settings = settings
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let control = ControlClient(path: settings.controlSocket)
        let hub = DashboardHub()
        let reader = MeshReader(control: control)
        let responder = DashboardResponder(token: settings.token, control: control, hub: hub, reader: reader, logger: logger)
        let listen = settings.listen
        let logger = self.logger, onListening = self.onListening
        let app = Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname(listen.host, port: listen.port), serverName: "hostmesh"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? listen.port
                logger.info("dashboard listening", metadata: ["dashboard.listen": "\(listen.host):\(port)"])
                if !["127.0.0.1", "::1", "localhost"].contains(listen.host) {
                    logger.warning("the dashboard speaks plain HTTP on a non-loopback address: put a TLS proxy or an SSH tunnel in front of it",
                                   metadata: ["dashboard.listen": "\(listen.host):\(port)"])
                }
                onListening(HostPort(host: listen.host, port: port))
            },
            logger: logger
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await app.run() }
            group.addTask { await Self.refresh(hub: hub, reader: reader, every: settings.interval) }
            group.addTask { await Self.runMigrations(hub: hub, control: control) }
            // Ends on graceful shutdown: its control call would otherwise stream until the agent stops.
            group.addTask { await cancelWhenGracefulShutdown { await Self.followMigrations(hub: hub, control: control, logger: logger) } }
            // On graceful shutdown the pages' streams end first, so the server's drain is not held by them.
            group.addTask {
                try? await gracefulShutdown() // throws only when cancelled, and then the group is ending anyway
                await hub.close()
            }
        }
    }

    /// Reads the mesh every `interval` while a page listens, and sends it to the pages.
    static func refresh(hub: DashboardHub, reader: MeshReader, every interval: Duration) async {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            if await hub.hasSubscribers {
                let snapshot = await reader.snapshot(operations: await hub.currentOperations, live: await hub.liveMigrations)
                await hub.publish(ServerEvent(name: "state", data: DashboardJSON.string(snapshot)))
            }
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }

    /// Follows the agent's events (`events`, Protocol.md §7) and hands each migration event to the
    /// hub, so the pages show every migration of this host live, wherever it was started.
    /// Subscribes again a second after the stream ends (the agent restarting), until cancelled.
    static func followMigrations(hub: DashboardHub, control: ControlClient, logger: Logger) async {
        // The control client calls back synchronously: a stream carries the events, in order, to the hub.
        let (events, sink) = AsyncStream.makeStream(of: AgentEvent.self, bufferingPolicy: .bufferingNewest(256))
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await event in events { await hub.follow(event) }
            }
            group.addTask {
                while !Task.isCancelled {
                    do {
                        _ = try await control.call("events", Empty(), as: Empty.self) { line in
                            // A line that does not decode (a newer agent's event) is skipped.
                            if let event = try? JSONDecoder().decode(EventLine.self, from: line).progress, event.kind.hasPrefix("migration.") {
                                sink.yield(event)
                            }
                        }
                    } catch {
                        if !Task.isCancelled { logger.debug("dashboard: the agent's event stream ended; subscribing again", metadata: ["error": "\(error)"]) }
                    }
                    do { try await Task.sleep(for: .seconds(1)) } catch { break }
                }
                sink.finish()
            }
        }
    }

    /// Runs each migration the page asks for through the control socket's `migrate`, forwarding
    /// its progress lines to the pages, each in its own child task.
    static func runMigrations(hub: DashboardHub, control: ControlClient) async {
        await withDiscardingTaskGroup { group in
            for await job in hub.jobs {
                group.addTask {
                    let request = ControlTypes.Migrate(vm: job.vm, to: job.to, settings: MigrationSettings())
                    // Progress lines arrive in a synchronous callback: a stream keeps them in order,
                    // and the last one reaches the pages before the result does.
                    let (updates, sink) = AsyncStream.makeStream(of: MigrationProgressUpdate.self, bufferingPolicy: .bufferingNewest(16))
                    async let forwarded: Void = {
                        for await update in updates { await hub.update(job.operation) { $0.progress = update } }
                    }()
                    let outcome: Result<MigrationReport, any Error>
                    do {
                        outcome = .success(try await control.call("migrate", request, as: MigrationReport.self) { line in
                            // A line that is not a progress line (none is expected) is not shown.
                            if let update = try? JSONDecoder().decode(ProgressLine.self, from: line).progress { sink.yield(update) }
                        })
                    } catch {
                        outcome = .failure(error)
                    }
                    sink.finish()
                    await forwarded
                    switch outcome {
                    case .success(let report):
                        await hub.update(job.operation) {
                            $0.state = "done"
                            $0.report = report
                        }
                    case .failure(let error):
                        let message = (error as? ControlError)?.message ?? "\(error)"
                        await hub.update(job.operation) {
                            $0.state = "failed"
                            $0.error = message
                        }
                    }
                }
            }
        }
    }
}

/// One `{"progress": …}` line of `events`.
struct EventLine: Decodable {
    var progress: AgentEvent
}

/// One `{"progress": …}` line of `migrate`.
struct ProgressLine: Decodable {
    var progress: MigrationProgressUpdate
}

import ControlAPI
import Foundation

/// One server-sent event: its name and its JSON data (one line: the encoder writes no newlines).
struct ServerEvent: Sendable, Equatable {
    var name: String
    var data: String

    /// The event as the `text/event-stream` format frames it.
    var framed: String { "event: \(name)\ndata: \(data)\n\n" }
}

/// Who listens for events, the last state sent, and the migrations started from the page. The
/// pages' event streams subscribe here; the snapshot loop and the migration jobs publish.
actor DashboardHub {
    private var subscribers: [Int: AsyncStream<ServerEvent>.Continuation] = [:]
    private var nextSubscriber = 0
    private var lastState: ServerEvent?
    private var operations: [DashboardOperation] = []
    /// Migrations this host takes part in, from the agent's events, oldest first.
    private var live: [LiveMigration] = []
    /// Live migrations kept for pages that open later (the oldest ended ones are dropped).
    static let liveKept = 20
    private var nextOperation = 1
    private var closed = false
    /// Migrations the page asked for, run by the service (structured, cancelled with it).
    nonisolated let jobs: AsyncStream<MigrationJob>
    private let jobSink: AsyncStream<MigrationJob>.Continuation
    /// Operations kept for pages that open later (the oldest finished ones are dropped).
    static let operationsKept = 20

    init() {
        (jobs, jobSink) = AsyncStream.makeStream(of: MigrationJob.self)
    }

    var hasSubscribers: Bool { !subscribers.isEmpty }

    /// A new event stream, starting with the last state (so the page renders at once) and every
    /// operation the dashboard knows.
    func subscribe() -> (Int, AsyncStream<ServerEvent>) {
        let (stream, continuation) = AsyncStream.makeStream(of: ServerEvent.self, bufferingPolicy: .bufferingNewest(64))
        if closed {
            continuation.finish()
            return (-1, stream)
        }
        let id = nextSubscriber
        nextSubscriber += 1
        subscribers[id] = continuation
        if let lastState { continuation.yield(lastState) }
        for operation in operations { continuation.yield(Self.event(operation)) }
        for migration in live { continuation.yield(Self.event(migration)) }
        return (id, stream)
    }

    /// Takes in one of the agent's events: a migration's phase or progress changes its entry
    /// (a new migration gets one), and the pages are told. Other events are ignored.
    func follow(_ event: AgentEvent) {
        let index = live.firstIndex { $0.migration == event.migration }
        guard let next = LiveMigration.following(index.map { live[$0] }, event) else { return }
        if let index { live[index] = next } else {
            live.append(next)
            if live.count > Self.liveKept, let old = live.firstIndex(where: \.ended) ?? live.indices.first { live.remove(at: old) }
        }
        publish(Self.event(next))
    }

    /// The live migrations, for the snapshot.
    var liveMigrations: [LiveMigration] { live }

    func unsubscribe(_ id: Int) {
        subscribers.removeValue(forKey: id)?.finish()
    }

    /// Sends `event` to every page; a `state` event is also kept for pages that open later.
    func publish(_ event: ServerEvent) {
        if event.name == "state" { lastState = event }
        for continuation in subscribers.values { continuation.yield(event) }
    }

    /// Queues a migration of `vm` to `to`; returns the operation's id.
    func startMigration(vm: String, to: MigrationDestination) -> String {
        let id = "op-\(nextOperation)"
        nextOperation += 1
        let operation = DashboardOperation(id: id, vm: vm, to: to.description, state: "running")
        operations.append(operation)
        if operations.count > Self.operationsKept, let old = operations.firstIndex(where: { $0.state != "running" }) {
            operations.remove(at: old)
        }
        publish(Self.event(operation))
        jobSink.yield(MigrationJob(operation: id, vm: vm, to: to))
        return id
    }

    /// Records a change of operation `id` and sends it to every page.
    func update(_ id: String, _ change: @Sendable (inout DashboardOperation) -> Void) {
        guard let index = operations.firstIndex(where: { $0.id == id }) else { return }
        change(&operations[index])
        publish(Self.event(operations[index]))
    }

    /// The operations, for the snapshot.
    var currentOperations: [DashboardOperation] { operations }

    /// Ends every stream (graceful shutdown): the pages' connections close and reconnect later.
    func close() {
        closed = true
        for continuation in subscribers.values { continuation.finish() }
        subscribers.removeAll()
        jobSink.finish()
    }

    static func event(_ operation: DashboardOperation) -> ServerEvent {
        ServerEvent(name: "operation", data: DashboardJSON.string(operation))
    }

    static func event(_ migration: LiveMigration) -> ServerEvent {
        ServerEvent(name: "migration", data: DashboardJSON.string(migration))
    }
}

/// A migration the page asked for.
struct MigrationJob: Sendable {
    var operation: String
    var vm: String
    var to: MigrationDestination
}

/// JSON as the dashboard sends it: sorted keys, one line.
enum DashboardJSON {
    static func data(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Our own Codable values always encode; an empty object keeps the stream well-formed.
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }

    static func string(_ value: some Encodable) -> String {
        String(decoding: data(value), as: UTF8.self)
    }
}

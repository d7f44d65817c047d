@testable import Agent
import ControlAPI
import Foundation
import Logging
import Synchronization
import Testing

/// `events` on a real control socket: a subscriber that hangs up ends its subscription at once
/// and quietly (no event needed to notice, no error), and one still connected when the agent
/// stops is told so.
@Suite(.timeLimit(.minutes(1)))
struct EventStreamTests {
    final class Ends: Sendable {
        let all = Mutex<[EventStream.End]>([])
    }

    /// Serves `events` from `hub` on a fresh socket for the length of `body`.
    func withServer(_ hub: AgentEventHub, _ body: (String, Ends, Task<Void, any Error>) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "hm-events-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ControlServer.bind(path: dir + "/control.sock", logger: Logger(label: "events-test"))
        let ends = Ends()
        let serving = Task {
            try await server.run { request, responder in
                let end = await EventStream(hub: hub).serve(responder)
                ends.all.withLock { $0.append(end) }
                switch end {
                case .clientLeft: return Empty()
                case .stopping: throw ControlError.unavailable("the agent is stopping")
                }
            }
        }
        defer { serving.cancel() }
        try await body(dir + "/control.sock", ends, serving)
    }

    func waitUntil(_ what: String, _ check: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !check() {
            guard ContinuousClock.now < deadline else { throw ControlError.failed("never: \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test func aSubscriberThatHangsUpEndsQuietlyWithoutAnotherEvent() async throws {
        let hub = AgentEventHub(hostID: "node-a")
        try await withServer(hub) { path, ends, _ in
            let seen = Mutex<[String]>([])
            let client = Task {
                try await ControlClient(path: path).call("events", Empty(), as: Empty.self) { line in
                    seen.withLock { $0.append(String(decoding: line, as: UTF8.self)) }
                }
            }
            // The first line says the subscription is in place; then every event reaches it.
            try await waitUntil("subscribed") { seen.withLock { $0.count } == 1 }
            #expect(hub.subscriberCount == 1 && seen.withLock { $0[0] }.contains(#""kind":"subscribed""#) && seen.withLock { $0[0] }.contains(#""host":"node-a""#))
            hub.publish("member.alive", peer: "node-b")
            try await waitUntil("the event arrived") { seen.withLock { $0.count } == 2 }
            #expect(seen.withLock { $0[1] }.contains(#""kind":"member.alive""#))
            // The client goes away (its task cancelled closes its connection): nothing is published after.
            client.cancel()
            _ = await client.result
            try await waitUntil("the subscription ended") { hub.subscriberCount == 0 }
            try await waitUntil("the request ended") { !ends.all.withLock { $0 }.isEmpty }
            #expect(ends.all.withLock { $0 } == [.clientLeft])
        }
    }

    @Test func aSubscriberStillThereWhenTheAgentStopsIsToldSo() async throws {
        let hub = AgentEventHub(hostID: "node-a")
        try await withServer(hub) { path, ends, serving in
            let client = Task {
                try await ControlClient(path: path).call("events", Empty(), as: Empty.self)
            }
            try await waitUntil("subscribed") { hub.subscriberCount == 1 }
            serving.cancel()
            let outcome = await client.result
            #expect(throws: ControlError.self) { try outcome.get() }
            if case .failure(let error as ControlError) = outcome {
                #expect(error.code != "bad_request", "\(error)")
            }
            try await waitUntil("the request ended") { !ends.all.withLock { $0 }.isEmpty }
            #expect(ends.all.withLock { $0 } == [.stopping])
        }
    }
}

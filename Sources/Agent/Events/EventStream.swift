import ControlAPI

/// Serves one `events` request (Protocol.md §7): `subscribed`, then every event from the
/// subscription on, as a progress line, until the client goes away (then it ends quietly: nobody
/// is left to answer) or the agent stops (then the client is told so).
struct EventStream: Sendable {
    let hub: AgentEventHub

    /// How a subscription ended.
    enum End: Sendable, Equatable {
        /// The client closed its connection, or a write to it failed.
        case clientLeft
        /// The request was cancelled: the agent is stopping.
        case stopping
    }

    /// Streams to `responder` until the client leaves or the task is cancelled. The first line is
    /// a `subscribed` event, sent once the subscription is in place: a client that waits for it
    /// knows every event from then on reaches it.
    func serve(_ responder: ControlResponder) async -> End {
        let events = hub.subscribe()
        do { try await responder.progress(hub.event("subscribed")) } catch { return .clientLeft }
        return await withTaskGroup(of: End.self) { group in
            group.addTask {
                for await event in events {
                    do { try await responder.progress(event) } catch { return .clientLeft }
                }
                // The stream only ends when this task is cancelled.
                return .stopping
            }
            // A client that hangs up is noticed at once, not at the next event (which may be hours away).
            group.addTask {
                await responder.clientLeft()
                return Task.isCancelled ? .stopping : .clientLeft
            }
            let end = await group.next() ?? .stopping
            group.cancelAll()
            return end
        }
    }
}

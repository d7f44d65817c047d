import ControlAPI
/// Agents to say hello to, handed from whoever learns of one (a member that joined or
/// restarted, a larger host id that said hello first and must be dialled back) to the
/// `PeerGreetingService`, which runs the greetings in a task group it owns: nobody starts an
/// unowned task to greet.
struct GreetingQueue: Sendable {
    /// The requests, in order; one consumer.
    let requests: AsyncStream<HostPort>
    private let sink: AsyncStream<HostPort>.Continuation

    /// An empty queue. It keeps the newest 256 requests if greetings fall behind (an older one
    /// is repeated when the member is next seen joining or restarting).
    init() {
        (requests, sink) = AsyncStream.makeStream(of: HostPort.self, bufferingPolicy: .bufferingNewest(256))
    }

    /// Asks for a greeting of the agent at `address`; ignored once the queue is finished.
    func request(_ address: HostPort) { sink.yield(address) }

    /// No more greetings: ends `requests`.
    func finish() { sink.finish() }
}

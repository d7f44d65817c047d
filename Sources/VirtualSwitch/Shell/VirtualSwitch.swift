public import Logging
import MeshTime
public import NIOCore
public import NIOPosix
import ShellSupport

/// The virtual switch of one agent: VM NICs on unix datagram sockets, peers over an encrypted
/// UDP overlay, driven by a `SwitchCore` (Protocol.md §8).
///
/// Everything runs on one event loop: sockets are read there, the core is called there
/// synchronously, and its directives are carried out there. The public methods hop onto the
/// loop. Lifecycle: create, optionally add networks and ports, `start()` (binds the overlay
/// socket, starts the tick), …, `stop()`; or `run()`, which starts and then runs until its
/// task is cancelled (a `Service` for swift-service-lifecycle).
public final class VirtualSwitch: Sendable {
    /// How the switch runs.
    public struct Configuration: Sendable {
        /// This host's id (as in its certificate).
        public var hostID: HostID
        /// Where the overlay's UDP socket binds (port 0: any free port; see `overlayAddress()`).
        public var overlayAddress: SocketAddress
        /// Core tunables.
        public var settings: SwitchSettings
        /// How often the core's tick runs (expiry, activation deadlines, straggler grace).
        public var tickInterval: Duration
        /// Send and receive buffer of every socket.
        public var socketBufferBytes: Int

        /// A configuration.
        public init(hostID: HostID, overlayAddress: SocketAddress, settings: SwitchSettings = SwitchSettings(),
                    tickInterval: Duration = .milliseconds(100), socketBufferBytes: Int = 1 << 20) {
            self.hostID = hostID
            self.overlayAddress = overlayAddress
            self.settings = settings
            self.tickInterval = tickInterval
            self.socketBufferBytes = socketBufferBytes
        }
    }

    /// The configuration.
    public let configuration: Configuration
    /// The loop everything runs on.
    public let eventLoop: any EventLoop
    /// Events for the agent: locations to gossip, activations, timeouts, duplicates, frozen
    /// MACs. One consumer; the newest 4096 are kept if it falls behind.
    public let events: AsyncStream<SwitchEvent>

    /// The loop-confined state, the hops onto the loop and the stopped promise.
    let runtime: LoopBoundShell<SwitchShellState, VirtualSwitchError>
    /// The core's timeline: the host's uptime.
    let timeline = ShellTimeline()
    let eventSink: AsyncStream<SwitchEvent>.Continuation
    let logger: Logger

    /// A switch, not yet started.
    public init(configuration: Configuration, eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
                logger: Logger = Logger(label: "hostmesh.vswitch")) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        var logger = logger
        logger[metadataKey: "mesh.host"] = "\(configuration.hostID)"
        self.logger = logger
        let shell = SwitchShellState(core: SwitchCore(localHost: configuration.hostID, settings: configuration.settings),
                                     overlay: OverlayEndpoint(localHost: configuration.hostID))
        runtime = LoopBoundShell(state: shell, eventLoop: eventLoop, loopGone: .stopped)
        (events, eventSink) = AsyncStream.makeStream(of: SwitchEvent.self, bufferingPolicy: .bufferingNewest(4096))
    }

    // MARK: lifecycle

    /// Binds the overlay socket, starts reading it, then starts the tick. Calling it again while
    /// running (or while another start is under way) is a no-op. If the overlay cannot be bound
    /// or read, it throws, and the switch is back where it was (`.idle`, nothing open, no tick):
    /// it never claims to be running without its overlay, and `start()` may be tried again.
    public func start() async throws(VirtualSwitchError) {
        let channel: (any Channel)?
        do {
            channel = try await onLoopAsync { shell throws(VirtualSwitchError) -> EventLoopFuture<(any Channel)?> in
                switch shell.phase {
                case .running, .starting: return self.eventLoop.makeSucceededFuture(nil)
                case .stopped: throw .stopped
                case .idle: break
                }
                let socket = try DatagramSocket.bindUDP(address: self.configuration.overlayAddress,
                                                        bufferBytes: self.configuration.socketBufferBytes)
                // Claimed before the socket is handed to NIO: a second start meanwhile is a
                // no-op, and a stop meanwhile closes the socket and wins.
                shell.phase = .starting
                shell.overlaySocket = socket
                let adopt = shell.adoptOverlay ?? { socket in
                    self.adopt(socket, what: "overlay socket \(self.configuration.overlayAddress)", vectorReads: true) { buffer in
                        self.onOverlayDatagram(buffer)
                    } onClose: {
                        self.logger.debug("overlay socket closed")
                    }
                }
                return adopt(socket).map { $0 }
            }
        } catch {
            await undoStart(after: error)
            throw error
        }
        guard let channel else { return }
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            guard shell.phase == .starting else {
                channel.close(promise: nil)  // stopped meanwhile: the stop already closed the rest
                throw .stopped
            }
            shell.phase = .running
            shell.overlayChannel = channel
            shell.tick = self.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: TimeAmount(self.configuration.tickInterval)) { _ in
                self.onTick()
            }
            self.logger.debug("virtual switch started",
                              metadata: ["vswitch.overlay": "\(shell.overlaySocket?.localAddress().map { "\($0)" } ?? "?")"])
        }
    }

    /// A start failed after claiming `.starting`: closes what it opened and goes back to `.idle`
    /// (a stop that came meanwhile has already closed everything and keeps `.stopped`).
    private func undoStart(after error: VirtualSwitchError) async {
        // Fails only if the loop is gone, and then there is no state left to undo.
        try? await runtime.onLoop { shell in
            guard shell.phase == .starting else { return }
            shell.phase = .idle
            shell.overlaySocket?.close()
            shell.overlaySocket = nil
            self.logger.debug("virtual switch did not start: its overlay socket cannot be read",
                              metadata: ["vswitch.overlay": "\(self.configuration.overlayAddress)", "error": "\(error)"])
        }
    }

    /// Starts, then runs until the calling task is cancelled; then stops.
    public func run() async throws {
        try await start()
        await withTaskCancellationHandler {
            await runtime.waitUntilStopped()
        } onCancel: {
            self.beginStop()
        }
    }

    /// Stops: closes every socket (removing the ports' socket files), ends `events`.
    /// The switch cannot be started again.
    public func stop() async {
        beginStop()
        await runtime.waitUntilStopped()
    }

    private func beginStop() {
        runtime.execute { shell in
            guard shell.phase != .stopped else { return }
            shell.phase = .stopped
            shell.tick?.cancel()
            var closing: [EventLoopFuture<Void>] = []
            for binding in shell.ports.values {
                if let channel = binding.channel { closing.append(channel.close().recover { _ in }) }
                binding.socket.close()
            }
            shell.ports = [:]
            if let channel = shell.overlayChannel { closing.append(channel.close().recover { _ in }) }
            shell.overlaySocket?.close()
            shell.overlayChannel = nil
            self.eventSink.finish()
            self.logger.debug("virtual switch stopped")
            self.runtime.stopped(after: EventLoopFuture.andAllComplete(closing, on: self.eventLoop))
        }
    }

    /// The overlay's bound UDP address (nil before `start()`).
    public func overlayAddress() async -> SocketAddress? {
        // Fails only once the switch stopped: no overlay socket then.
        try? await runtime.onLoop { shell in shell.overlaySocket?.localAddress() }
    }

    // MARK: loop plumbing

    /// Runs `body` on the loop and waits for the future it returns; a socket operation that
    /// fails is reported as `.channel`.
    func onLoopAsync<T: Sendable>(_ body: @escaping @Sendable (SwitchShellState) throws(VirtualSwitchError) -> EventLoopFuture<T>) async throws(VirtualSwitchError) -> T {
        try await runtime.onLoopAsync(body) { error in .channel(what: "complete a socket operation", reason: "\(error)") }
    }

    /// Hands a bound socket to SwiftNIO for reading, on this loop.
    ///
    /// `vectorReads` only for sockets whose senders always have an address (UDP): SwiftNIO's
    /// vector read traps on a datagram from an unnamed unix socket.
    func adopt(_ socket: DatagramSocket, what: String, vectorReads: Bool, onDatagram: @escaping @Sendable (ByteBuffer) -> Void,
               onClose: @escaping @Sendable () -> Void) -> EventLoopFuture<any Channel> {
        let largestDatagram = OverlayHeader.length + EthernetHeader.maxFrameLength + 16 + 64
        return DatagramBootstrap.receiving(on: eventLoop, receiveCapacity: largestDatagram, vectorReadCount: vectorReads ? 8 : nil,
                                           maxMessagesPerRead: 16) { buffer, _ in onDatagram(buffer) } onClose: { onClose() }
            .withBoundSocket(socket.channelDescriptor)
            .flatMapErrorThrowing { error in
                throw VirtualSwitchError.channel(what: "read from \(what)", reason: "\(error)")
            }
    }

    /// The current instant on the switch's timeline.
    func now() -> MeshInstant { timeline.now() }

    private func onTick() {
        let shell = runtime.state
        execute(shell.core.onTick(now: now()), shell)
    }
}

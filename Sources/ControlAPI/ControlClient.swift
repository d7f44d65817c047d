public import Foundation
import NIOCore
import NIOPosix

/// The command line's end of the control socket.
public struct ControlClient: Sendable {
    /// The socket path.
    public let path: String

    /// A client for the agent whose control socket is at `path`.
    public init(path: String) { self.path = path }

    /// Calls `method`; progress lines go to `onProgress` as raw JSON; returns the decoded result
    /// or throws the agent's `ControlError`.
    public func call<P: Encodable & Sendable, R: Decodable>(_ method: String, _ params: P, as: R.Type = R.self,
                                                            onProgress: (Data) -> Void = { _ in }) async throws -> R {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(unixDomainSocketPath: path) { ch in
                    ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
                }
        } catch {
            throw ControlError.unavailable("cannot reach the agent at \(path) (\(error)); is `hostmesh agent` running with this --state-dir?")
        }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: try controlEncoder.encode(RequestLine(method: method, params: params)) + [0x0a]))
            var reader = LineReader(inbound)
            while let line = try await reader.next() {
                switch try JSONDecoder().decode(ResponseLine<R>.self, from: line) {
                case .progress: onProgress(line)
                case .result(let r): return r
                case .error(let e): throw e
                }
            }
            throw ControlError.unavailable("the agent closed the connection without an answer")
        }
    }
}

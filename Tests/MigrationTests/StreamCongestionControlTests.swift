#if os(Linux)
import Foundation
import Logging
@testable import Migration
import NIOCore
import NIOPosix
import Testing

/// A migration stream's sending socket at distance asks for BBR (Protocol.md §6.11); where the
/// kernel refuses, the socket keeps the algorithm it had and the stream goes on.
@Suite(.timeLimit(.minutes(1))) struct StreamCongestionControlTests {
    /// The algorithm `channel`'s socket uses (`TCP_CONGESTION`).
    func algorithm(_ channel: any Channel) async throws -> String {
        let provider = try #require(channel as? any SocketOptionProvider)
        let name: (UInt64, UInt64) = try await provider.unsafeGetSocketOption(level: .init(IPPROTO_TCP), name: .init(TCP_CONGESTION)).get()
        return withUnsafeBytes(of: name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    @Test func aStreamSocketAsksForBBRAndKeepsTheSystemsWhenRefused() async throws {
        let loopback = try await LoopbackTCP.open()
        let system = try String(contentsOfFile: "/proc/sys/net/ipv4/tcp_congestion_control", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try await algorithm(loopback.client) == system)
        // Reno is always allowed: the socket starts from an algorithm other than the one asked for.
        #expect(try await StreamCongestionControl.set(loopback.client, algorithm: "reno").get())
        #expect(try await algorithm(loopback.client) == "reno")
        let taken = try await StreamCongestionControl.prefer(loopback.client, logger: Logger(label: "test")).get()
        let now = try await algorithm(loopback.client)
        if taken {
            #expect(now == StreamCongestionControl.preferred)
        } else {
            #expect(now == "reno", "refused, yet the socket's algorithm changed")
        }
        // The connection still carries data either way.
        try await loopback.client.writeAndFlush(loopback.client.allocator.buffer(string: "after")).get()
        try await loopback.client.close()
        try await loopback.close()
    }
}
#endif

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
        let taken = try await StreamCongestionControl.apply(.default, to: loopback.client, logger: Logger(label: "test")).get()
        let now = try await algorithm(loopback.client)
        if taken {
            #expect(now == "bbr")
        } else {
            #expect(now == "reno", "refused, yet the socket's algorithm changed")
        }
        // The connection still carries data either way.
        try await loopback.client.writeAndFlush(loopback.client.allocator.buffer(string: "after")).get()
        try await loopback.client.close()
        try await loopback.close()
    }

    /// The operator's `stream_congestion_control`: "system" leaves the socket as the kernel made
    /// it, a name is asked for, and the sizing of a stream at distance applies either.
    @Test func theHostsChoiceIsAppliedAtDistanceAndSystemSetsNothing() async throws {
        #expect(StreamCongestionControl.Choice(parsing: "system") == .system)
        #expect(StreamCongestionControl.Choice(parsing: "cubic") == .algorithm("cubic"))
        #expect(StreamCongestionControl.Choice.default == .algorithm("bbr") && "\(StreamCongestionControl.Choice.default)" == "bbr")
        for bad in ["", "BBR", "bbr!", "1bbr", "a_name_of_16_chr", "bbr cubic"] {
            #expect(StreamCongestionControl.Choice(parsing: bad) == nil, "\(bad) parsed")
        }
        // Asked at the agent's start, on a socket of its own: the refusal names the algorithm.
        #expect(StreamCongestionControl.check(.system) == nil && StreamCongestionControl.check(.algorithm("reno")) == nil)
        let refusal = try #require(StreamCongestionControl.check(.algorithm("nosuch_cc")))
        #expect(refusal.errno == ENOENT && "\(refusal)".hasPrefix("nosuch_cc: "), "\(refusal)")
        // The fix follows the errno: not loaded, or not allowed to this process.
        #expect(refusal.fix.contains("modprobe tcp_nosuch_cc") && refusal.fix.contains("unless the agent has CAP_NET_ADMIN"), "\(refusal.fix)")
        let notAllowed = StreamCongestionControl.Refusal(algorithm: "vegas", errno: EPERM).fix
        #expect(notAllowed.contains("tcp_allowed_congestion_control") && notAllowed.contains("CAP_NET_ADMIN") && !notAllowed.contains("modprobe"), "\(notAllowed)")
        // No socket to ask on is not a refusal.
        let unasked = StreamCongestionControl.Refusal(algorithm: "bbr", errno: EMFILE, unasked: true)
        #expect("\(unasked)".hasPrefix("cannot open a TCP socket") && unasked.fix.hasPrefix("nothing was refused yet"), "\(unasked): \(unasked.fix)")
        let loopback = try await LoopbackTCP.open()
        #expect(try await StreamCongestionControl.set(loopback.client, algorithm: "reno").get())
        // "system": nothing asked, at distance too. (This tells "system" from the default only
        // where the kernel lets this process set bbr, as on the machines `make test` runs on.)
        #expect(try await StreamCongestionControl.apply(.system, to: loopback.client, logger: Logger(label: "test")).get() == false)
        _ = try await StreamBuffers.apply(loopback.client, rttMicroseconds: 150_000, sending: true, congestionControl: .system).get()
        #expect(try await algorithm(loopback.client) == "reno")
        // A name, at distance: asked for (reno is always allowed, so set it from another).
        let other = try await LoopbackTCP.open()
        _ = try await StreamBuffers.apply(other.client, rttMicroseconds: 150_000, sending: true, congestionControl: .algorithm("reno")).get()
        #expect(try await algorithm(other.client) == "reno")
        // On a LAN nothing is asked, whatever the choice.
        let lan = try await LoopbackTCP.open()
        let before = try await algorithm(lan.client)
        _ = try await StreamBuffers.apply(lan.client, rttMicroseconds: 200, sending: true, congestionControl: .algorithm(before == "reno" ? "bbr" : "reno")).get()
        #expect(try await algorithm(lan.client) == before)
        for connection in [loopback, other, lan] {
            try await connection.client.close()
            try await connection.close()
        }
    }
}
#endif

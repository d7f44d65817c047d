import Benchmarks
import Foundation
import Hypervisor
import Testing
@testable import VirtualSwitch

/// A `NetworkBenchmark.Guest` backed by a real QEMU (what `hostmesh bench network` will use).
struct QEMUBenchmarkGuest: NetworkBenchmark.Guest {
    let process: VMProcess

    static func launch(_ request: NetworkBenchmark.GuestRequest) async throws -> any NetworkBenchmark.Guest {
        let spec = try #require(Guests.spec(name: request.name, mac: request.mac, ip: String(request.ipWithPrefix.split(separator: "/")[0]),
                                            work: request.work, attachment: request.attachment))
        return QEMUBenchmarkGuest(process: try await Guests.launch(spec, in: request.directory))
    }

    func console() async -> String { process.directory.readConsole() }

    func stop() async {
        process.kill()
        _ = await process.stop(quitGrace: .milliseconds(200))
    }
}

/// The measurement hook, run for real (no timing assertions; it prints the figures). Short
/// phases by default; `HOSTMESH_BENCH_SECONDS=N` lengthens them.
@Suite("Network measurement hook", .guestBuilt, .serialized, .timeLimit(.minutes(2)))
struct NetworkBenchmarkTests {
    @Test func overlayAndDirectEchoThroughputAndGuestRoundTrips() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var options = NetworkBenchmark.Options(directory: root)
        let seconds = Int(ProcessInfo.processInfo.environment["HOSTMESH_BENCH_SECONDS"] ?? "") ?? 1
        options.duration = .seconds(seconds)
        options.pingPhase = .seconds(max(2, seconds))
        let result = try await NetworkBenchmark.measure(launch: QEMUBenchmarkGuest.launch, options: options)
        for (name, arm) in [("direct ", result.direct), ("overlay", result.overlay)] {
            print("\(name): \(Int(arm.echoesPerSecond)) echoes/s, \(String(format: "%.1f", arm.megabitsPerSecond)) Mbit/s, "
                + "rtt p50 \(Int(arm.rttMedianMicroseconds)) us p99 \(Int(arm.rttP99Microseconds)) us, lost \(arm.lost), "
                + "guest ping rtt \(arm.guestPingRTTMicroseconds.map { "\(Int($0)) us" } ?? "?")")
        }
        print("overlay/direct throughput: \(String(format: "%.2f", result.overlayToDirect)) (payload \(result.payloadBytes) B, window \(result.window))")
        #expect(result.direct.echoesPerSecond > 0)
        #expect(result.overlay.echoesPerSecond > 0)
    }
}

import Foundation
import MeshIdentity
import Testing

/// With its descriptor limit reached, an agent must not spin on `accept` → EMFILE (issue 19,
/// finding 3): NIO's own accept backoff leaves the listening socket registered for reads, so
/// every listener looped thousands of times a second. Accepting now pauses (one attempt per
/// second, one log line per 10 s) and what is already connected keeps being served.
@Suite(.serialized, .timeLimit(.minutes(2))) struct DescriptorExhaustionTests {
    /// utime + stime of `pid`, in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
    static func cpuTicks(_ pid: pid_t) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        return Int(fields[11])! + Int(fields[12])! // fields[0] is field 3 (state)
    }

    /// A blocking socket connected to `127.0.0.1:port` (the kernel completes it from the
    /// listen backlog even when the agent cannot accept it).
    static func connectTCP(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return rc == 0 ? fd : -1
    }

    /// A blocking socket connected to the unix socket at `path`.
    static func connectUnix(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        return rc == 0 ? fd : -1
    }

    /// Sends one request line on `fd` and reads the answer line (blocking, 10 s receive timeout).
    static func request(_ fd: Int32, _ line: String) -> String {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !answer.contains(0x0a) {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            answer += buffer[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    @Test func anAgentOutOfDescriptorsDoesNotSpinAndServesWhatIsConnected() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let agent = try await mesh.start("node-1")
        let controlPath = StateDirectory(agent.stateDirectory).controlSocket
        // Connected before the exhaustion: must still be answered during it.
        let existing = Self.connectUnix(controlPath)
        #expect(existing >= 0)
        defer { close(existing) }

        // Leave the agent 16 descriptors, then take them with idle connections (fewer than the
        // handshake cap per prefix, so the agent accepts them all), and queue more on both
        // listeners: those can only be accepted once descriptors are free again.
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/fd").count
        let limit = Process()
        limit.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        limit.arguments = ["--pid", "\(agent.pid)", "--nofile=\(open + 16):"]
        try limit.run()
        limit.waitUntilExit()
        #expect(limit.terminationStatus == 0)
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<30 { idle.append(Self.connectTCP(port: agent.port)) }
        for _ in 0..<4 { idle.append(Self.connectUnix(controlPath)) }
        #expect(idle.allSatisfy { $0 >= 0 })
        // The agent accepts them at its own pace (a loaded machine may take a while).
        var atLimit = 0
        let deadline = ContinuousClock.now + .seconds(10)
        repeat {
            try await Task.sleep(for: .milliseconds(100))
            atLimit = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/fd").count
        } while atLimit < open + 14 && ContinuousClock.now < deadline
        #expect(atLimit >= open + 14, "the agent should be at its descriptor limit (\(atLimit) open, limit \(open + 16))")

        // A spinning accept loop burns a core: ~3 s of CPU over 3 s. Paused, the agent idles.
        let before = try Self.cpuTicks(agent.pid)
        try await Task.sleep(for: .seconds(3))
        let used = try Self.cpuTicks(agent.pid) - before
        let ticksPerSecond = sysconf(Int32(_SC_CLK_TCK))
        #expect(used < ticksPerSecond / 4, "the agent used \(used) ticks (\(ticksPerSecond)/s) of CPU in 3 s at its descriptor limit")

        // What is connected is still served.
        let answer = Self.request(existing, #"{"method":"status","params":{}}"#)
        #expect(answer.hasPrefix("{"), "the control connection opened before the exhaustion got: \(answer)")
        // One line per interval, not one per failed accept.
        let lines = agent.log.components(separatedBy: "cannot accept connections").count - 1
        #expect(lines >= 1 && lines <= 4, "\(lines) lines about failed accepts")
        #expect(agent.isRunning)
    }
}

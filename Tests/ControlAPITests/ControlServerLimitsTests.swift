@testable import ControlAPI
import Foundation
import Logging
import Testing

/// Runs blocking socket calls on a thread of their own: a test blocked in `write` or `read` on
/// Swift's cooperative pool (two threads here) starves the server it waits for, which needs the
/// same pool, and with it the whole test run.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// A raw client of a unix socket: what a careless or hostile local user can send. Its reads and
/// writes block, so they run off the cooperative pool (`offThePool`).
struct RawClient: Sendable {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes + [0])
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw ControlError.failed("connect: \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) async {
        await offThePool { sendBlocking(bytes) }
    }

    private func sendBlocking(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return } // the server closed: what it answered is still readable
            offset += n
        }
    }

    /// Everything the server sends until it closes (or the receive timeout).
    func readAll() async -> String { await readUntilClosed().text }

    /// What the server sends, and whether it then closed (false: the receive timeout ran out).
    func readUntilClosed() async -> (text: String, closed: Bool) {
        await offThePool { readUntilClosedBlocking() }
    }

    private func readUntilClosedBlocking() -> (text: String, closed: Bool) {
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return (String(decoding: out, as: UTF8.self), n == 0) }
            out += chunk[0..<n]
        }
    }

    func closeNow() { close(fd) }
}

@Suite struct ControlServerLimitsTests {
    static var logger: Logger { var l = Logger(label: "test"); l.logLevel = .critical; return l }

    func withServer(_ limits: ControlServer.Limits = .init(), _ body: (String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ctl-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) } // test cleanup
        let path = directory + "/control.sock"
        let server = try await ControlServer.bind(path: path, limits: limits, logger: Self.logger)
        let serving = Task {
            try await server.run { request, _ in
                if request.method == "slow" { try await Task.sleep(for: .seconds(5)) }
                return ["method": request.method]
            }
        }
        defer { serving.cancel() }
        try await body(path)
        await server.close()
    }

    @Test func theSocketHasMode0600AndNoStagingNameIsLeft() async throws {
        try await withServer { path in
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            let left = try FileManager.default.contentsOfDirectory(atPath: (path as NSString).deletingLastPathComponent)
            #expect(left == ["control.sock"])
        }
    }

    @Test(arguments: [false, true])
    func anOversizedLineIsAnsweredBadRequest(withNewline: Bool) async throws {
        try await withServer { path in
            let client = try RawClient(path: path)
            defer { client.closeNow() }
            // 2 MiB in one go: the limit holds however the bytes arrive.
            await client.send([UInt8](repeating: 0x61, count: 2 << 20) + (withNewline ? [0x0a] : []))
            let answer = await client.readAll()
            #expect(answer.contains("bad_request") && answer.contains("1 MiB"), "\(answer.prefix(300))")
        }
    }

    @Test func aLineJustUnderTheLimitIsRead() async throws {
        try await withServer { path in
            let client = try RawClient(path: path)
            defer { client.closeNow() }
            let head = Array("{\"method\":\"status\",\"pad\":\"".utf8)
            let tail = Array("\"}\n".utf8)
            await client.send(head + [UInt8](repeating: 0x61, count: ControlWire.maxLineBytes - head.count - tail.count + 1) + tail)
            let answer = await client.readAll()
            #expect(answer.contains("\"result\"") && answer.contains("status"), "\(answer.prefix(300))")
        }
    }

    @Test func connectionsOverTheLimitAreRefusedAndTheOthersServed() async throws {
        var limits = ControlServer.Limits()
        limits.maxConnections = 3
        try await withServer(limits) { path in
            let held = try (0..<3).map { _ in try RawClient(path: path) }
            for client in held { await client.send(Array("{\"method\":\"slow\"}\n".utf8)) }
            try await Task.sleep(for: .milliseconds(200))
            let extra = try RawClient(path: path)
            let refused = await extra.readAll()
            extra.closeNow()
            #expect(refused.contains("unavailable") && refused.contains("3 control connections"), "\(refused)")
            for client in held { client.closeNow() }
            // Slots free again once those end.
            try await Task.sleep(for: .seconds(6))
            let later = try RawClient(path: path)
            await later.send(Array("{\"method\":\"status\"}\n".utf8))
            #expect(await later.readAll().contains("\"result\""))
            later.closeNow()
        }
    }

    @Test func anIdleConnectionIsClosed() async throws {
        var limits = ControlServer.Limits()
        limits.requestTimeout = .milliseconds(300)
        try await withServer(limits) { path in
            let client = try RawClient(path: path)
            defer { client.closeNow() }
            // The server closes it (end of stream), long before the client's 15 s receive timeout.
            let (answer, closed) = await client.readUntilClosed()
            #expect(answer.isEmpty)
            #expect(closed, "the idle connection was not closed")
        }
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A scripted QMP server on a unix socket for testing how the client copes with a QEMU that
/// misbehaves. Blocking sockets on its own thread, one connection; test code only.
final class FakeQMPServer: Sendable {
    /// One accepted connection.
    struct Connection {
        let fd: Int32

        func send(_ text: String) {
            _ = text.withCString { write(fd, $0, strlen($0)) }
        }

        /// Reads one newline-terminated line (nil at EOF).
        func readLine() -> String? {
            var line = [UInt8]()
            var byte: UInt8 = 0
            while read(fd, &byte, 1) == 1 {
                if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
                line.append(byte)
            }
            return nil
        }

        /// Reads one command and returns its `execute` and `id` (JSON text of the id).
        func readCommand() -> (execute: String, id: String)? {
            guard let line = readLine(), let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let execute = object["execute"] as? String else { return nil }
            let id = object["id"].flatMap { try? JSONSerialization.data(withJSONObject: $0, options: .fragmentsAllowed) }
            return (execute, id.map { String(decoding: $0, as: UTF8.self) } ?? "null")
        }

        /// Sends the greeting, answers qmp_capabilities.
        func negotiate() {
            send(#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}"# + "\r\n")
            guard let command = readCommand(), command.execute == "qmp_capabilities" else { return }
            send(#"{"return": {}, "id": \#(command.id)}"# + "\r\n")
        }

        func close() {
            shutdown(fd, Int32(SHUT_RDWR))
            Glibc.close(fd)
        }
    }

    let path: String
    private let listener: Int32

    /// Listens at `path` and runs `script` on the first connection, on a new thread.
    init(path: String, script: @escaping @Sendable (Connection) -> Void) {
        self.path = path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            _ = path.withCString { strncpy(raw.baseAddress!.assumingMemoryBound(to: CChar.self), $0, raw.count - 1) }
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        listen(fd, 4)
        listener = fd
        let thread = Thread {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            let connection = Connection(fd: client)
            script(connection)
        }
        thread.start()
    }

    /// Stops listening (unblocks a pending accept).
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(path)
    }
}

import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The echo probe's own sending socket: a non-blocking unix datagram socket bound at a path.
///
/// SwiftNIO cannot batch writes on unix datagram sockets (its vector write path traps), and
/// the switch, like SwiftNIO, wants a named sender, so the probe binds and sends itself.
///
/// Not Sendable: owned by one `EchoProbe`, used only on its channel's event loop.
final class ProbeSender {
    /// Why the socket could not be made.
    struct SetupError: Error, CustomStringConvertible {
        var step: String
        var path: String
        var code: Int32
        var description: String { "probe socket \(path): \(step) failed (errno \(code)); use a short, writable directory" }
    }

    private var descriptor: Int32
    private let path: String

    init(path: String) throws {
        let address = try SocketAddress(unixDomainSocketPath: path)
        unlink(path)  // a socket left by an earlier run; the benchmark's directory is its own
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SetupError(step: "socket", path: path, code: errno) }
        var size: Int32 = 1 << 20
        // A smaller send buffer only means more EAGAINs, which the probe counts as send failures.
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
        guard bound == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SetupError(step: "bind", path: path, code: code)
        }
        descriptor = fd
        self.path = path
    }

    /// Sends one datagram without blocking; false if the kernel refused it (e.g. queue full).
    func send(_ datagram: ByteBuffer, to destination: SocketAddress) -> Bool {
        guard descriptor >= 0 else { return false }
        let sent = datagram.withUnsafeReadableBytes { bytes in
            destination.withSockAddr { pointer, length in
                sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), pointer, socklen_t(length))
            }
        }
        return sent >= 0
    }

    /// Closes the socket and removes its file. Idempotent.
    func close() {
        guard descriptor >= 0 else { return }
        Glibc.close(descriptor)
        descriptor = -1
        unlink(path)
    }
}

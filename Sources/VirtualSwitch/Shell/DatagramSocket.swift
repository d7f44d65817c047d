import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket the shell creates and binds itself, then hands to SwiftNIO for reading.
///
/// Sending does not go through the NIO channel: a `sendto` error such as ENOENT (QEMU has not
/// bound its socket yet) or ECONNREFUSED (QEMU is gone) would make NIO close the channel. The
/// shell sends on its own duplicate of the descriptor, non-blocking, and counts failures as
/// drops; a full receiver (EAGAIN) drops the datagram rather than queueing it.
///
/// Not Sendable: owned by the shell's state and used only on its event loop.
final class DatagramSocket {
    /// The descriptor NIO reads from (NIO owns and closes it).
    let channelDescriptor: Int32
    /// The shell's own descriptor for `sendto` (closed by `close()`).
    private var sendDescriptor: Int32
    /// The bound unix socket path, removed on `close()` if it is still this socket's file.
    let unixPath: String?
    /// Device and inode of the socket file at bind time.
    private let unixFile: (dev: UInt64, ino: UInt64)?

    /// How a send went.
    enum SendResult: Equatable {
        case sent
        case failed(errno: Int32)
    }

    private init(descriptor: Int32, sendDescriptor: Int32, unixPath: String?) {
        channelDescriptor = descriptor
        self.sendDescriptor = sendDescriptor
        self.unixPath = unixPath
        unixFile = unixPath.flatMap(Self.fileIdentity)
    }

    private static func fileIdentity(_ path: String) -> (dev: UInt64, ino: UInt64)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    deinit {
        if sendDescriptor >= 0 { Glibc.close(sendDescriptor) }
    }

    /// Binds a unix datagram socket at `path`, replacing a stale socket file left by a previous
    /// run (but never a regular file or a directory).
    static func bindUnix(path: String, bufferBytes: Int) throws(VirtualSwitchError) -> DatagramSocket {
        let address: SocketAddress
        do {
            address = try SocketAddress(unixDomainSocketPath: path)
        } catch {
            throw .socketPathTooLong(path: path)
        }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else { throw .pathNotASocket(path: path) }
            unlink(path)
        }
        let socket = try make(family: AF_UNIX, address: address, describe: path, bufferBytes: bufferBytes)
        return DatagramSocket(descriptor: socket.0, sendDescriptor: socket.1, unixPath: path)
    }

    /// Binds a UDP socket at `address` (port 0 picks a free port).
    static func bindUDP(address: SocketAddress, bufferBytes: Int) throws(VirtualSwitchError) -> DatagramSocket {
        let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
        let socket = try make(family: family, address: address, describe: "\(address)", bufferBytes: bufferBytes)
        return DatagramSocket(descriptor: socket.0, sendDescriptor: socket.1, unixPath: nil)
    }

    private static func make(family: Int32, address: SocketAddress, describe: String,
                             bufferBytes: Int) throws(VirtualSwitchError) -> (Int32, Int32) {
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .socket(what: "create a socket for \(describe)", errno: errno) }
        var size = Int32(clamping: bufferBytes)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let rc = address.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
        guard rc == 0 else {
            let code = errno
            Glibc.close(fd)
            throw .socket(what: "bind \(describe)", errno: code)
        }
        let sendFD = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard sendFD >= 0 else {
            let code = errno
            Glibc.close(fd)
            throw .socket(what: "duplicate the socket for \(describe)", errno: code)
        }
        return (fd, sendFD)
    }

    /// The address the socket is bound to (for UDP: with the port the kernel picked).
    func localAddress() -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sendDescriptor, $0, &length) }
        }
        guard rc == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &storage) { raw in
                SocketAddress(raw.load(as: sockaddr_in.self), host: "")
            }
        case AF_INET6:
            return withUnsafeBytes(of: &storage) { raw in
                SocketAddress(raw.load(as: sockaddr_in6.self), host: "")
            }
        default:
            return nil
        }
    }

    /// Sends one datagram to `destination` without blocking.
    func send(_ datagram: ByteBuffer, to destination: SocketAddress) -> SendResult {
        guard sendDescriptor >= 0 else { return .failed(errno: EBADF) }
        let sent = datagram.withUnsafeReadableBytes { bytes in
            destination.withSockAddr { pointer, length in
                sendto(sendDescriptor, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), pointer, socklen_t(length))
            }
        }
        return sent >= 0 ? .sent : .failed(errno: errno)
    }

    /// Bytes of the datagrams this unix socket sent that their receiver has not read yet (the
    /// kernel charges each to the sender until it is read: `SIOCOUTQ`, the kernel's size of
    /// each, not its length); nil if the kernel does not say.
    func unreadSentBytes() -> Int? {
        guard sendDescriptor >= 0 else { return nil }
        var bytes: Int32 = 0
        // SIOCOUTQ (= TIOCOUTQ, 0x5411 on Linux; Glibc does not export linux/sockios.h).
        return ioctl(sendDescriptor, UInt(0x5411), &bytes) == 0 ? Int(bytes) : nil
    }

    /// Closes the send descriptor and removes the socket file (the NIO channel is closed by
    /// the caller).
    /// Closes a socket NIO never adopted: its receive descriptor too (otherwise NIO closes it).
    func closeUnadopted() {
        Glibc.close(channelDescriptor)
        close()
    }

    func close() {
        if sendDescriptor >= 0 {
            Glibc.close(sendDescriptor)
            sendDescriptor = -1
        }
        // Only our own socket file: another switch may have bound the same path since.
        if let unixPath, let unixFile, let now = Self.fileIdentity(unixPath), now == unixFile { unlink(unixPath) }
    }
}

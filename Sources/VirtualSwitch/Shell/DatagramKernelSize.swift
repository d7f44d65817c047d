#if canImport(Glibc)
import Glibc
#endif

/// What a unix datagram of a given length costs its sender's socket while unread (its kernel
/// buffer's size, what `DatagramSocket.unreadSentBytes` adds up), measured once per length on a
/// private socket pair: the kernel's sizes depend on its version and configuration, so they are
/// asked, not computed. Used at a port's freeze to tell which of the frames handed to a stopped
/// QEMU its socket still holds (Protocol.md §8.6.1).
///
/// Not Sendable: owned by the shell's state and used only on its event loop.
final class DatagramKernelSize {
    private var sizes: [Int: Int] = [:]
    private var pair: (Int32, Int32)?

    deinit {
        if let pair {
            close(pair.0)
            close(pair.1)
        }
    }

    /// The kernel size of an unread datagram of `length` bytes; nil if it cannot be measured.
    func of(length: Int) -> Int? {
        if let known = sizes[length] { return known }
        guard let (sender, receiver) = socketPair() else { return nil }
        var before: Int32 = 0, after: Int32 = 0
        guard ioctl(sender, UInt(0x5411), &before) == 0 else { return nil }  // SIOCOUTQ
        let payload = [UInt8](repeating: 0, count: max(length, 1))
        guard send(sender, payload, length, Int32(MSG_DONTWAIT)) == length else { return nil }
        let measured = ioctl(sender, UInt(0x5411), &after) == 0 ? Int(after - before) : nil
        var sink = [UInt8](repeating: 0, count: max(length, 1))
        // Drains what was just sent; a failure leaves one datagram queued, and the next
        // measurement's own before/after difference is still exact.
        _ = recv(receiver, &sink, sink.count, Int32(MSG_DONTWAIT))
        guard let measured, measured > 0 else { return nil }
        sizes[length] = measured
        return measured
    }

    private func socketPair() -> (Int32, Int32)? {
        if let pair { return pair }
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else { return nil }
        pair = (fds[0], fds[1])
        return pair
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A Linux tap device made by this process (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`): reading its
/// descriptor gives the Ethernet frames the kernel sends out of the interface, writing one makes
/// the kernel receive it on the interface. Not persistent: the interface goes away when the
/// descriptor is closed, so a crashed test or benchmark leaves nothing behind.
struct TapDevice: ~Copyable {
    /// The interface name (at most 15 bytes).
    let name: String
    /// Non-blocking, close-on-exec.
    let descriptor: Int32

    /// Makes tap interface `name`; it starts down and unattached (`ip link set NAME master BRIDGE up`).
    init(name: String) throws(LinkEmulatorError) {
        guard !name.isEmpty, name.utf8.count <= 15 else {
            throw .device("tap name \"\(name)\" must be 1 to 15 bytes (a Linux interface name)")
        }
        let fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw .device("cannot open /dev/net/tun: \(String(cString: strerror(errno))) (needs root and the tun module)")
        }
        // struct ifreq: the name in the first 16 bytes, then ifr_flags (a short) at offset 16.
        var request = [UInt8](repeating: 0, count: 40)
        request.replaceSubrange(0..<name.utf8.count, with: name.utf8)
        let flags = tapFlags
        request[16] = UInt8(flags & 0xFF)
        request[17] = UInt8(flags >> 8)
        let result = request.withUnsafeMutableBytes { tunSetInterface(fd, tunSetIFF, $0.baseAddress!) }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .device("cannot make tap \(name): \(reason) (is the name taken by another interface?)")
        }
        self.name = name
        descriptor = fd
    }

    deinit { close(descriptor) }
}

/// IFF_TAP | IFF_NO_PI of <linux/if_tun.h>: Ethernet frames, no packet-information header.
private let tapFlags: UInt16 = 0x0002 | 0x1000
/// TUNSETIFF = _IOW('T', 202, int).
private let tunSetIFF: UInt = 0x4004_54CA

/// ioctl(2) with one pointer argument. Swift cannot call C's variadic `ioctl`; on Linux's ABIs a
/// call with one pointer argument passes it exactly as the variadic form does.
@_silgen_name("ioctl")
private func tunSetInterface(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer) -> Int32

/// A disk image that cannot be used for a migration with local disks, naming the disk and the fix.
public enum DiskImageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The image file does not exist.
    case missing(path: String)
    /// `qemu-img` cannot read the image (permissions, corruption, a lock it cannot share).
    case unreadable(path: String, reason: String)
    /// The image's real format is not the one the VM spec names.
    case formatMismatch(path: String, spec: String, actual: String)
    /// A format Hostmesh cannot create on a destination (only raw and qcow2).
    case unsupportedFormat(path: String, format: String)
    /// The destination's storage directory lacks room for the images.
    case noRoom(directory: String, neededBytes: UInt64, availableBytes: UInt64)
    /// Creating or removing an image failed.
    case createFailed(path: String, reason: String)
    /// `qemu-img` is not installed or could not be run.
    case toolUnavailable(reason: String)

    public var description: String {
        switch self {
        case let .missing(path):
            return "disk \(path) does not exist: restore the image, or remove the disk from the VM before migrating it"
        case let .unreadable(path, reason):
            return "disk \(path) cannot be read (\(reason)): check its permissions and that no other program holds it, then retry"
        case let .formatMismatch(path, spec, actual):
            return "disk \(path) is \(actual) but the VM says \(spec): define the VM with the image's real format"
        case let .unsupportedFormat(path, format):
            return "disk \(path) is \(format), which hostmesh cannot copy (raw and qcow2 only): convert it with `qemu-img convert -O qcow2`"
        case let .noRoom(directory, needed, available):
            return "not enough room for the VM's disks in \(directory): they need \(Self.mib(needed)) MiB, \(available >> 20) MiB can be reserved; free space there or choose another destination"
        case let .createFailed(path, reason):
            return "cannot create disk image \(path): \(reason)"
        case let .toolUnavailable(reason):
            return "qemu-img cannot be run (\(reason)): install the Debian package qemu-utils"
        }
    }

    /// MiB, rounded up (what is needed is never understated).
    static func mib(_ bytes: UInt64) -> UInt64 { (bytes + (1 << 20) - 1) >> 20 }
}

import Foundation

/// What `qemu-img info` says about an image: what a destination needs to create its copy.
public struct DiskImageInfo: Sendable, Equatable {
    /// The image file.
    public var path: String
    /// Its real format as QEMU names it (`raw`, `qcow2`, `vmdk`, …).
    public var format: String
    /// Bytes the guest sees.
    public var virtualSize: UInt64
    /// Bytes the file occupies on its file system.
    public var allocatedBytes: UInt64

    /// Facts read from `qemu-img info --output=json`.
    init(path: String, json: Data) throws {
        struct Info: Decodable {
            var format: String
            var virtualSize: UInt64
            var actualSize: UInt64?
            enum CodingKeys: String, CodingKey {
                case format
                case virtualSize = "virtual-size"
                case actualSize = "actual-size"
            }
        }
        let info = try JSONDecoder().decode(Info.self, from: json)
        self.init(path: path, format: info.format, virtualSize: info.virtualSize, allocatedBytes: info.actualSize ?? info.virtualSize)
    }

    /// Facts given directly (tests).
    public init(path: String, format: String, virtualSize: UInt64, allocatedBytes: UInt64) {
        self.path = path
        self.format = format
        self.virtualSize = virtualSize
        self.allocatedBytes = allocatedBytes
    }

    /// Sparse or not preallocated: it occupies less than the guest sees.
    public var thin: Bool { allocatedBytes < virtualSize }

    /// The format as a spec names it, checked against what the spec says: a disk that is not
    /// what the spec claims, or that hostmesh cannot create elsewhere, is refused here.
    public func checked(against disk: VMSpec.Disk) throws(DiskImageError) -> VMSpec.Disk.Format {
        guard let real = VMSpec.Disk.Format(rawValue: format) else { throw .unsupportedFormat(path: path, format: format) }
        guard real == disk.format else { throw .formatMismatch(path: path, spec: disk.format.rawValue, actual: format) }
        return real
    }

    /// Bytes a destination reserves for a copy: the full size for a preallocated image; for a
    /// thin one what the source occupies now plus an eighth of the virtual size for what the guest
    /// writes while the mirror runs (capped at the full size).
    public static func reservation(virtualSize: UInt64, allocatedBytes: UInt64, thin: Bool) -> UInt64 {
        thin ? min(virtualSize, allocatedBytes + virtualSize / 8) : virtualSize
    }
}

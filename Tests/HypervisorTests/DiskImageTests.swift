import Foundation
@testable import Hypervisor
import Testing

/// What a destination learns about a disk image, and what it reserves for it (Protocol.md §6.7).
@Suite struct DiskImageTests {
    @Test func factsComeFromQEMUImgInfo() async throws {
        let path = NSTemporaryDirectory() + "hm-disk-\(UUID().uuidString.prefix(8)).qcow2"
        defer { try? FileManager.default.removeItem(atPath: path) } // a leftover temporary image is harmless
        try await QEMUImageTool.create(path, format: .qcow2, virtualSize: 64 << 20, thin: true)
        let info = try await QEMUImageTool.info(path)
        #expect(info.format == "qcow2" && info.virtualSize == 64 << 20 && info.thin)
        #expect(try info.checked(against: VMSpec.Disk(path: path, format: .qcow2, shared: false)) == .qcow2)
        #expect(throws: DiskImageError.formatMismatch(path: path, spec: "raw", actual: "qcow2")) {
            try info.checked(against: VMSpec.Disk(path: path, format: .raw, shared: false))
        }
        // An image is never created over an existing file.
        await #expect(throws: DiskImageError.createFailed(path: path, reason: "a file is already there")) {
            try await QEMUImageTool.create(path, format: .qcow2, virtualSize: 1 << 20, thin: true)
        }
        await #expect(throws: DiskImageError.missing(path: path + ".gone")) { _ = try await QEMUImageTool.info(path + ".gone") }
    }

    @Test func unsupportedFormatsAreNamed() throws {
        let vmdk = DiskImageInfo(path: "/x.vmdk", format: "vmdk", virtualSize: 1 << 30, allocatedBytes: 1 << 20)
        #expect(throws: DiskImageError.unsupportedFormat(path: "/x.vmdk", format: "vmdk")) {
            try vmdk.checked(against: VMSpec.Disk(path: "/x.vmdk", format: .raw, shared: false))
        }
    }

    @Test func reservationsCoverWhatTheCopyCanGrowTo() {
        // Preallocated: all of it. Thin: what is allocated plus an eighth for writes during the mirror, at most all of it.
        #expect(DiskImageInfo.reservation(virtualSize: 8 << 30, allocatedBytes: 8 << 30, thin: false) == 8 << 30)
        #expect(DiskImageInfo.reservation(virtualSize: 8 << 30, allocatedBytes: 1 << 30, thin: true) == 2 << 30)
        #expect(DiskImageInfo.reservation(virtualSize: 8 << 30, allocatedBytes: 15 << 29, thin: true) == 8 << 30)
        #expect(DiskImageError.noRoom(directory: "/d", neededBytes: 3 << 20, availableBytes: (1 << 20) + 1).description.contains("they need 3 MiB, 1 MiB can be reserved"))
    }
}

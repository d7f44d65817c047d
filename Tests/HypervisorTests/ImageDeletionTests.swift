import Foundation
import Hypervisor
import Testing

/// `ImageDeletion`: the image's name goes before `remove` returns; its blocks are freed when the
/// descriptor kept open for that closes, on NIO's blocking pool, and nothing of it stays open.
@Suite struct ImageDeletionTests {
    /// The descriptors of this process open on `path` (unlinked: "<path> (deleted)").
    func openDescriptors(on path: String) throws -> [String] {
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")
        return fds.compactMap { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")).flatMap { $0.hasPrefix(path) ? $0 : nil } // gone meanwhile: not open
        }
    }

    @Test func theNameGoesAtOnceAndTheDescriptorIsClosedAfter() async throws {
        let directory = NSTemporaryDirectory() + "hm-image-deletion-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) } // the test's own directory: nothing else in it
        let image = directory + "/disk.raw"
        #expect(FileManager.default.createFile(atPath: image, contents: Data(repeating: 0x5a, count: 8 << 20)))
        try ImageDeletion.remove(image)
        #expect(!FileManager.default.fileExists(atPath: image))
        // Closed on the pool's thread: wait for it, bounded.
        let deadline = ContinuousClock.now + .seconds(10)
        while try !openDescriptors(on: image).isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let left = try openDescriptors(on: image)
        #expect(left.isEmpty, "still open: \(left)")
        // A name that is not there: the error, as removeItem gives it, and no descriptor left.
        #expect(throws: (any Error).self) { try ImageDeletion.remove(image) }
        #expect(try openDescriptors(on: image).isEmpty)
    }
}

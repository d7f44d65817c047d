import Foundation

/// A nonce the source writes beside a shared disk's image for the pre-flight checklist, and the
/// destination reads at the same path: only storage both hosts really share shows it (Protocol.md
/// §6.9). `<image's directory>/.hostmesh/check-<hex>.nonce`, 32 random bytes, removed after the check.
struct SharedDiskNonce: Sendable {
    let path: String
    let bytes: [UInt8]

    /// What the destination found.
    enum Verdict: Equatable {
        case same
        case differs(String)
    }

    /// Writes a fresh nonce beside the image at `image`; throws when it cannot.
    static func write(beside image: String) throws -> SharedDiskNonce {
        let directory = (image as NSString).deletingLastPathComponent + "/.hostmesh"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let path = directory + "/check-" + bytes.prefix(8).map { String(format: "%02x", $0) }.joined() + ".nonce"
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: [.atomic])
        return SharedDiskNonce(path: path, bytes: bytes)
    }

    /// Removes the nonce file.
    func remove() {
        try? FileManager.default.removeItem(atPath: path) // a stale nonce file is harmless: nothing reads it again
    }

    /// Whether the nonce file at `path`, which must lie in `image`'s `.hostmesh` directory, holds `expected`.
    static func verify(path: String, beside image: String, expected: [UInt8]) -> Verdict {
        let directory = (image as NSString).deletingLastPathComponent + "/.hostmesh/"
        // Only a nonce file beside the image: the source must not make this host read any file.
        guard path.hasPrefix(directory), !path.dropFirst(directory.count).contains("/"), path.hasSuffix(".nonce") else {
            return .differs("the nonce path \(path) is not beside the image")
        }
        guard FileManager.default.fileExists(atPath: image) else { return .differs("there is no file \(image) here") }
        guard let data = FileManager.default.contents(atPath: path) else { return .differs("the nonce the source wrote beside it is not here") }
        guard [UInt8](data) == expected, expected.count == 32 else { return .differs("the nonce beside it holds other bytes") }
        return .same
    }
}

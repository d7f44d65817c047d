import Foundation

/// The test guest's disk log (`hm.work=disk`, Deploy/guest/README.md): every `DISK <boot> <n>`
/// line on the console is a record the virtual disk acknowledged; block `n mod blocks` of the
/// image must hold it byte for byte.
enum DiskLog {
    static let blockSize = 4096

    /// The bytes record `n` must have on the image.
    static func record(_ n: Int, boot: String) -> [UInt8] {
        var bytes = (0..<blockSize).map { UInt8(truncatingIfNeeded: n &* 131 &+ $0 &* 7) }
        let header = Array("HMDISK \(boot) \(n)\n".utf8)
        bytes.replaceSubrange(0..<header.count, with: header)
        return bytes
    }

    /// The last acknowledged record on a console and the device size in blocks.
    static func lastRecord(_ console: String) -> (boot: String, n: Int, blocks: Int)? {
        var blocks: Int?
        var last: (String, Int)?
        for line in console.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: " ")
            if parts.count == 3, parts[0] == "DISK", parts[1] == "start", parts[2].hasPrefix("blocks=") {
                blocks = Int(parts[2].dropFirst("blocks=".count))
            } else if parts.count >= 3, parts[0] == "DISK", let n = Int(parts[2]) {
                last = (String(parts[1]), n)
            }
        }
        guard let blocks, let last else { return nil }
        return (last.0, last.1, blocks)
    }

    /// The record numbers a console shows acknowledged for one boot, in order (a destination's
    /// console has no `DISK start` line, only records).
    static func records(_ console: String, boot: String) -> [Int] {
        console.split(whereSeparator: \.isNewline).compactMap { line in
            let parts = line.split(separator: " ")
            // `DISK <boot> <n>`, and from this guest on `<write latency µs>` after it.
            return parts.count >= 3 && parts[0] == "DISK" && parts[1] == boot ? Int(parts[2]) : nil
        }
    }

    /// Record numbers among the last `blocks` acknowledged ones (up to `upTo`) that the image does
    /// not hold intact. Empty: nothing acknowledged was lost or torn. A block may also hold the
    /// record after `last`, one lap later, in the oldest record's block: the guest may have
    /// written it, unannounced yet, when it was stopped (a log that wrapped).
    static func damagedRecords(image path: String, boot: String, upTo last: Int, blocks: Int) throws -> [Int] {
        damagedRecords(image: try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))), boot: boot, upTo: last, blocks: blocks)
    }

    /// As above, on an image already read.
    static func damagedRecords(image data: [UInt8], boot: String, upTo last: Int, blocks: Int) -> [Int] {
        return (max(1, last - blocks + 1)...max(1, last)).filter { n in
            let start = (n % blocks) * blockSize
            guard start + blockSize <= data.count else { return true }
            let held = Array(data[start..<start + blockSize])
            return held != record(n, boot: boot) && !(n + blocks == last + 1 && held == record(n + blocks, boot: boot))
        }
    }
}

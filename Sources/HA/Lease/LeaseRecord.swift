/// The content of a VM's lease file on shared storage (Protocol.md §9.2):
///
///     hostmesh-lease 1
///     vm 5f0c…
///     owner node-a
///     epoch 7
///     counter 1234
///     state held
///     crc32 9a3b0c1d
///
/// `state` is `held` (the owner runs a copy), `incoming` (a migration's destination runs a copy
/// that is not yet the VM's: its QEMU waits for, or takes, the incoming stream) or `released`.
///
/// Lines end in `\n`; `crc32` is the CRC-32 (IEEE) of every byte before the `crc32` line, in
/// lower-case hex. The whole file is at most 512 bytes and is replaced atomically (written to
/// `<file>.tmp`, fsynced, renamed over the file), so a reader sees one whole record or the last.
public struct LeaseRecord: Sendable, Equatable {
    /// The VM id.
    public var vm: String
    /// The host that holds (or held) the lease.
    public var owner: String
    /// The VM's ownership epoch at that host.
    public var epoch: Int64
    /// Renewal counter: rises by one at every renewal.
    public var counter: UInt64
    /// False once the owner released it on purpose (the VM stopped or moved away).
    public var held: Bool
    /// A held lease of a migration's destination before the handover committed (`state
    /// incoming`): a copy may run here, so it must go stale before any takeover, but this host
    /// is not the VM's owner, so it alone never makes the VM one to restart (Protocol.md §9.2).
    public var incoming: Bool

    /// A record.
    public init(vm: String, owner: String, epoch: Int64, counter: UInt64, held: Bool = true, incoming: Bool = false) {
        self.vm = vm
        self.owner = owner
        self.epoch = epoch
        self.counter = counter
        self.held = held
        self.incoming = held && incoming
    }

    /// The `state` line's value.
    public var stateName: String { !held ? "released" : incoming ? "incoming" : "held" }

    /// The largest lease file accepted.
    public static let maxSize = 512

    /// The file's bytes.
    public var encoded: [UInt8] {
        let body = "hostmesh-lease 1\nvm \(vm)\nowner \(owner)\nepoch \(epoch)\ncounter \(counter)\nstate \(stateName)\n"
        let sum = CRC32.checksum(Array(body.utf8))
        let hex = String(sum, radix: 16)
        return Array((body + "crc32 " + String(repeating: "0", count: 8 - hex.count) + hex + "\n").utf8)
    }

    /// Parses the lease file at `path` for VM `vm`; refuses, naming the path, a file that is not
    /// a lease, is damaged, or belongs to another VM.
    public init(parsing bytes: [UInt8], path: String, vm expected: String) throws(LeaseFileError) {
        guard bytes.count <= Self.maxSize else { throw .corrupt(path: path, reason: "\(bytes.count) bytes, more than a lease's \(Self.maxSize)") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .corrupt(path: path, reason: "not UTF-8 text") }
        var all = text.split(separator: "\n", omittingEmptySubsequences: false)
        if all.last == "" { all.removeLast() } // the final newline
        guard let crcLine = all.last, crcLine.hasPrefix("crc32 ") else { throw .corrupt(path: path, reason: "it does not end with a crc32 line") }
        let sumText = crcLine.dropFirst("crc32 ".count)
        guard sumText.count == 8, let sum = UInt32(sumText, radix: 16) else { throw .corrupt(path: path, reason: "crc32 \"\(sumText)\" is not 8 hex digits") }
        let lines = all.dropLast()
        let body = lines.map { $0 + "\n" }.joined()
        guard CRC32.checksum(Array(body.utf8)) == sum else { throw .corrupt(path: path, reason: "the checksum does not match (a torn or damaged write)") }
        var fields: [String: String] = [:]
        guard lines.first == "hostmesh-lease 1" else { throw .corrupt(path: path, reason: "it does not start with \"hostmesh-lease 1\"") }
        for line in lines.dropFirst() {
            guard let space = line.firstIndex(of: " ") else { throw .corrupt(path: path, reason: "line \"\(line)\" has no value") }
            fields[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        func field(_ name: String) throws(LeaseFileError) -> String {
            guard let value = fields[name], !value.isEmpty else { throw .corrupt(path: path, reason: "no \(name) field") }
            return value
        }
        vm = try field("vm")
        guard vm == expected else { throw .otherVM(path: path, expected: expected, found: vm) }
        owner = try field("owner")
        guard let epoch = Int64(try field("epoch")), epoch >= 1 else { throw .corrupt(path: path, reason: "epoch is not a positive whole number") }
        self.epoch = epoch
        guard let counter = UInt64(try field("counter")) else { throw .corrupt(path: path, reason: "counter is not a whole number") }
        self.counter = counter
        switch try field("state") {
        case "held": (held, incoming) = (true, false)
        case "incoming": (held, incoming) = (true, true)
        case "released": (held, incoming) = (false, false)
        case let other: throw .corrupt(path: path, reason: "state \"\(other)\" is not held, incoming or released")
        }
    }
}

/// A lease file that cannot be used, with its path; the VM is then not taken over (fail closed).
public enum LeaseFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not a lease file, or damaged.
    case corrupt(path: String, reason: String)
    /// A lease of another VM where this VM's should be.
    case otherVM(path: String, expected: String, found: String)

    public var description: String {
        switch self {
        case let .corrupt(path, reason):
            return "lease file \(path) is refused: \(reason). Nothing is taken over while it is unreadable; "
                + "if its VM runs nowhere, remove the file and start the VM on one host"
        case let .otherVM(path, expected, found):
            return "lease file \(path) belongs to VM \(found), not \(expected): two VMs share a lease path. "
                + "Give each VM its own disk directory, or remove the stray file"
        }
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), for torn-write detection only.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

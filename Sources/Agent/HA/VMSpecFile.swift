import Foundation
import Hypervisor

/// A VM's spec on the shared storage beside its lease (Protocol.md §9.2, "Spec file"):
/// `<lease directory>/<vm>.spec.json`, written atomically by the owner whenever it starts the VM
/// under a lease, so that a host taking the VM over knows what to start. Ownership records carry
/// only the VM's id, owner, epoch and this directory.
struct VMSpecFile: Codable, Sendable, Equatable {
    /// The first line of defence against a file of another kind: always `hostmesh-vm-spec 1`.
    static let format = "hostmesh-vm-spec 1"
    /// Larger files are refused unread.
    static let maxSize = 1 << 20

    var format: String = Self.format
    /// The VM's id; equal to `spec.id`.
    var vm: String
    /// The host that wrote it, and the epoch it started the VM at.
    var owner: String
    var epoch: Int64
    var spec: VMSpec

    init(spec: VMSpec, owner: String, epoch: Int64) {
        vm = spec.id
        self.owner = owner
        self.epoch = epoch
        self.spec = spec
    }

    /// Parses the file at `path`, which must be VM `expected`'s.
    ///
    /// - Throws: `VMSpecFileError` naming the path: too large, not this format, or another VM's.
    init(parsing data: Data, path: String, vm expected: String) throws(VMSpecFileError) {
        guard data.count <= Self.maxSize else { throw .corrupt(path: path, reason: "\(data.count) bytes, more than \(Self.maxSize)") }
        let decoded: VMSpecFile
        do { decoded = try JSONDecoder().decode(VMSpecFile.self, from: data) } catch {
            throw .corrupt(path: path, reason: "it is not a VM spec file (\(error))")
        }
        guard decoded.format == Self.format else { throw .corrupt(path: path, reason: "format \"\(decoded.format)\" is not \"\(Self.format)\"") }
        guard decoded.epoch >= 1 else { throw .corrupt(path: path, reason: "epoch \(decoded.epoch) is not positive") }
        guard decoded.vm == expected, decoded.spec.id == expected else {
            throw .otherVM(path: path, expected: expected, found: decoded.vm == expected ? decoded.spec.id : decoded.vm)
        }
        self = decoded
    }
}

/// A spec file that cannot be used, with its path; the VM is then not taken over (fail closed).
enum VMSpecFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Absent: the owner never wrote it (an agent from before spec files, or leases were off).
    case missing(path: String)
    /// Not a spec file, or damaged.
    case corrupt(path: String, reason: String)
    /// Another VM's spec where this VM's should be.
    case otherVM(path: String, expected: String, found: String)

    var description: String {
        switch self {
        case let .missing(path):
            return "VM spec file \(path) does not exist: no other host knows what to start. Start the VM on its owner again "
                + "(the owner writes the file when it starts a VM under a lease)"
        case let .corrupt(path, reason):
            return "VM spec file \(path) is refused: \(reason). Nothing is taken over while it is unreadable; "
                + "start the VM on its owner again to rewrite it"
        case let .otherVM(path, expected, found):
            return "VM spec file \(path) belongs to VM \(found), not \(expected): two VMs share a lease path. "
                + "Give each VM its own disk path, then start it again"
        }
    }
}

extension LeaseFiles {
    func specPath(_ vm: String) -> String { directory + "/" + vm + ".spec.json" }

    /// Replaces `vm`'s spec file with `file` (written to a temporary file, fsynced, renamed over
    /// the old one, the directory fsynced: a reader sees the old file or the new one).
    func writeSpec(_ file: VMSpecFile) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try replace(specPath(file.vm), with: [UInt8](try encoder.encode(file)))
    }

    /// `vm`'s spec file; throws `VMSpecFileError` (naming the path) when it is absent, damaged
    /// or another VM's, `LeaseIOError` when it cannot be read.
    func readSpec(vm: String) throws -> VMSpecFile {
        let path = specPath(vm)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            if !FileManager.default.fileExists(atPath: path) { throw VMSpecFileError.missing(path: path) }
            throw LeaseIOError(path: path, operation: "open", errno: errno)
        }
        defer { try? handle.close() } // read-only: nothing to lose at close
        let data = try handle.read(upToCount: VMSpecFile.maxSize + 1) ?? Data()
        return try VMSpecFile(parsing: data, path: path, vm: vm)
    }
}

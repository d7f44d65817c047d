import Foundation
import HA
import Hypervisor

/// A VM's lease files on shared storage (Protocol.md §9.2): `.hostmesh/` in the directory of the
/// VM's first disk holds `<vm>.<host>.lease`, one per host that may run a copy (replaced
/// atomically), and `<vm>.claim.<epoch>` (created exclusively: the storage decides which host
/// takes a VM over).
///
/// Used by the lease keeper (`LeaseKeeper`, one process per VM copy), the owner's agent (the spec
/// file, `VMSpecFile`) and the takeover shell (`TakeoverSupervisor`).
struct LeaseFiles: Sendable {
    /// The `.hostmesh` directory.
    let directory: String

    /// The lease directory of `spec`, or why the VM cannot be restarted on another host.
    static func directory(for spec: VMSpec) throws(RestartElsewhereError) -> String {
        guard let first = spec.disks.first else { throw .noDisk(vm: spec.name) }
        if let local = spec.disks.first(where: { !$0.shared }) { throw .localDisk(vm: spec.name, path: local.path) }
        return (first.path as NSString).deletingLastPathComponent + "/.hostmesh"
    }

    func leasePath(_ vm: String, host: String) -> String { directory + "/" + vm + "." + host + ".lease" }
    func claimPath(_ vm: String, epoch: Int64) -> String { directory + "/" + vm + ".claim." + String(epoch) }

    /// Replaces the lease file with `record`: written to a temporary file, fsynced, renamed over
    /// the old one, and the directory fsynced, so a reader sees the old record or the new one.
    func write(_ record: LeaseRecord) throws {
        try replace(leasePath(record.vm, host: record.owner), with: record.encoded)
    }

    /// Replaces the file at `path` (in `directory`) with `bytes` atomically: written to
    /// `<path>.tmp`, fsynced, renamed over the old one, the directory fsynced.
    func replace(_ path: String, with bytes: [UInt8]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LeaseIOError(path: temporary, operation: "open", errno: errno) }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let savedErrno = errno
        guard written == bytes.count, fsync(fd) == 0 else {
            close(fd)
            throw LeaseIOError(path: temporary, operation: written == bytes.count ? "fsync" : "write", errno: written < 0 ? savedErrno : errno)
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw LeaseIOError(path: path, operation: "rename", errno: errno) }
        try syncDirectory()
    }

    /// Every lease file of `vm`, sorted by host; throws `LeaseFileError` (naming the path) for a
    /// damaged file, one of another VM or one whose owner is not the host its name says, and
    /// `LeaseIOError` when one cannot be read.
    func leases(vm: String) throws -> [LeaseRecord] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            if !FileManager.default.fileExists(atPath: directory) { return [] }
            throw error
        }
        var out: [LeaseRecord] = []
        for name in names.sorted() where name.hasPrefix(vm + ".") && name.hasSuffix(".lease") {
            let host = String(name.dropFirst(vm.count + 1).dropLast(".lease".count))
            guard let record = try read(vm: vm, host: host) else { continue }
            guard record.owner == host else {
                throw LeaseFileError.corrupt(path: leasePath(vm, host: host), reason: "it names owner \(record.owner), not \(host)")
            }
            out.append(record)
        }
        return out
    }

    /// The lease of `vm` written by `host`, nil when there is none; throws as `leases(vm:)`.
    func read(vm: String, host: String) throws -> LeaseRecord? {
        let path = leasePath(vm, host: host)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            if !FileManager.default.fileExists(atPath: path) { return nil }
            throw LeaseIOError(path: path, operation: "open", errno: errno)
        }
        defer { try? handle.close() } // read-only: nothing to lose at close
        let data = try handle.read(upToCount: LeaseRecord.maxSize + 1) ?? Data()
        return try LeaseRecord(parsing: [UInt8](data), path: path, vm: vm)
    }

    /// Claims `vm` at `epoch` for `host`: true when this call created the claim file, false when
    /// it exists already (another host, or an earlier try, claimed that epoch).
    func claim(vm: String, epoch: Int64, host: String) throws -> Bool {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = claimPath(vm, epoch: epoch)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            if errno == EEXIST { return false }
            throw LeaseIOError(path: path, operation: "create", errno: errno)
        }
        let bytes = Array((host + "\n").utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        // The claim is the file's existence; its content only says who for the operator.
        guard written == bytes.count, synced else { throw LeaseIOError(path: path, operation: "write", errno: errno) }
        try syncDirectory()
        return true
    }

    /// The host that claimed `vm` at `epoch`, if anyone did.
    func claimant(vm: String, epoch: Int64) -> String? {
        // Unreadable or absent: no claim that can be shown (the claim itself is decided by create).
        guard let data = FileManager.default.contents(atPath: claimPath(vm, epoch: epoch)) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The highest claim of `vm` on the storage (its epoch and claimant), nil when there is none.
    func highestClaim(vm: String) throws -> (epoch: Int64, host: String)? {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            if !FileManager.default.fileExists(atPath: directory) { return nil }
            throw error
        }
        let prefix = vm + ".claim."
        guard let epoch = names.filter({ $0.hasPrefix(prefix) }).compactMap({ Int64($0.dropFirst(prefix.count)) }).max() else { return nil }
        return (epoch, claimant(vm: vm, epoch: epoch) ?? "another host")
    }

    private func syncDirectory() throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw LeaseIOError(path: directory, operation: "open", errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw LeaseIOError(path: directory, operation: "fsync", errno: errno) }
    }
}

/// A lease file operation that failed, with the path and the system's reason.
struct LeaseIOError: Error, CustomStringConvertible {
    let path: String
    let operation: String
    let errno: Int32
    var description: String { "cannot \(operation) \(path): \(String(cString: strerror(errno)))" }
}

/// Why a VM cannot be restarted on another host (issue 20 item 5).
enum RestartElsewhereError: Error, Equatable, CustomStringConvertible {
    /// A disk is on this host only: another host has no copy of it.
    case localDisk(vm: String, path: String)
    /// No disk at all: there is no shared storage to hold its lease.
    case noDisk(vm: String)

    var description: String {
        switch self {
        case let .localDisk(vm, path):
            return "\(vm) cannot be restarted on another host: its disk \(path) is not on shared storage, so no other host has it "
                + "(put the image on storage every host mounts at the same path and define the VM with --shared-storage)"
        case let .noDisk(vm):
            return "\(vm) cannot be restarted on another host: it has no disk on shared storage to hold its lease (Protocol.md §9.2); "
                + "give it a disk with --disk PATH --shared-storage"
        }
    }
}

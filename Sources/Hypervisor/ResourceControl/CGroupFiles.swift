import Foundation
import Glibc

/// What the cgroup controllers of VMs share: making a group (v2: handing the controller down to
/// it) and writing one of its files.
enum CGroupFiles {
    /// Creates `group` if needed; under cgroup v2, enables `controller` in its parent first.
    static func ensure(_ group: String, controller: String, v2: Bool) throws(ResourceControlError) {
        if v2 {
            // The parent must hand the controller down before the child has its files.
            let parent = (group as NSString).deletingLastPathComponent
            let enabled = (try? String(contentsOfFile: parent + "/cgroup.subtree_control", encoding: .utf8)) ?? "" // unreadable: enabling below says why
            if !enabled.split(whereSeparator: \.isWhitespace).contains(Substring(controller)) {
                try write("+\(controller)\n", to: parent + "/cgroup.subtree_control")
            }
        }
        if mkdir(group, 0o755) != 0, errno != EEXIST {
            throw .failed("cannot create cgroup \(group): \(String(cString: strerror(errno))) (the agent runs as root to control its VMs' resources)")
        }
    }

    /// Writes `text` to the control file at `path`, all of it or an error naming the file.
    static func write(_ text: String, to path: String) throws(ResourceControlError) {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { throw .failed("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw .failed("cannot write \"\(text.trimmingCharacters(in: .whitespacesAndNewlines))\" to \(path): \(String(cString: strerror(errno)))")
        }
    }
}

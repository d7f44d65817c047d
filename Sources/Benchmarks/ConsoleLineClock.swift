import ControlAPI
import Foundation
import Synchronization

/// Follows a guest's serial console file and notes when each new line appeared, on the host's
/// clock (seconds since the Unix epoch, as `SwitchoverTimelineRecorder`'s points). A guest's own
/// clock cannot place its lines against the host's switchover points; the moment a line reaches
/// the file can, to within the polling interval (QEMU writes the serial output as the guest
/// prints it, and `hmtool ping` flushes each `PINGGAP` line as the reply ending the gap comes).
///
/// Polls on its own thread (a benchmark's helper: the file reads block), every `interval`.
final class ConsoleLineClock: Sendable {
    /// One line and when it was first seen.
    struct Line: Sendable, Equatable {
        var at: Double
        var text: String
    }

    private struct State {
        var lines: [Line] = []
        var stopped = false
    }

    private let path: String
    private let prefixes: [String]
    private let interval: Duration
    private let state = Mutex(State())

    /// Follows `path` from its current end, keeping lines that start with one of `prefixes`.
    init(path: String, prefixes: [String], interval: Duration = .milliseconds(10)) {
        self.path = path
        self.prefixes = prefixes
        self.interval = interval
        let start = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0 // no file yet: from its start
        let thread = Thread { [self] in follow(from: start) }
        thread.name = "console-line-clock"
        thread.start()
    }

    /// The console file of the QEMU running as `pid` (its `-chardev file,id=serial0,path=…`,
    /// `QEMUCommandLine`), or nil if that process has none.
    static func consoleLog(ofQEMU pid: Int32) -> String? {
        guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        let marker = "file,id=serial0,path="
        return cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            .first { $0.hasPrefix(marker) }
            .map { String($0.dropFirst(marker.count)).replacingOccurrences(of: ",,", with: ",") }
    }

    /// Follows the `PING`/`PINGGAP` lines about `ip` of the pinging guest whose QEMU runs as
    /// `pid`; throws when its console file cannot be found (its gaps could not be placed).
    static func pinger(ofQEMU pid: Int32?, ip: String) throws -> ConsoleLineClock {
        guard let console = pid.flatMap(consoleLog(ofQEMU:)) else {
            throw ControlError.failed("cannot find the peer VM's console file (its QEMU's -chardev serial0, pid \(pid.map(String.init) ?? "unknown")): its gaps could not be placed; is the agent running QEMU on this machine?")
        }
        return ConsoleLineClock(path: console, prefixes: ["PING \(ip) ", "PINGGAP \(ip) "])
    }

    /// The lines seen so far, in order.
    var lines: [Line] { state.withLock { $0.lines } }

    /// Stops following (the thread ends within one interval).
    func stop() { state.withLock { $0.stopped = true } }

    private func follow(from start: UInt64) {
        var offset = start
        var partial = Data()
        let pause = Double(interval.components.attoseconds) / 1e18 + Double(interval.components.seconds)
        while !state.withLock({ $0.stopped }) {
            if let handle = FileHandle(forReadingAtPath: path) {
                // A read error only delays this poll: the next one reads the same bytes again.
                if (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.readToEnd(), !data.isEmpty {
                    let now = Date().timeIntervalSince1970
                    offset += UInt64(data.count)
                    partial.append(data)
                    var found: [Line] = []
                    while let newline = partial.firstIndex(of: 0x0A) {
                        let text = String(decoding: partial[partial.startIndex..<newline], as: UTF8.self)
                            .trimmingCharacters(in: .whitespacesAndNewlines)
                        partial.removeSubrange(partial.startIndex...newline)
                        if prefixes.contains(where: { text.hasPrefix($0) }) { found.append(Line(at: now, text: text)) }
                    }
                    if !found.isEmpty { state.withLock { $0.lines += found } }
                }
                try? handle.close() // read-only handle: nothing is lost if closing fails
            }
            Thread.sleep(forTimeInterval: pause)
        }
    }
}

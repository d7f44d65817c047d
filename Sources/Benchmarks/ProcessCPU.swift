import Foundation

/// CPU time spent by processes, for benchmarks that report CPU beside wall time (on 2 cores,
/// when QEMU keeps both busy, a time ratio mostly measures CPU).
enum ProcessCPU {
    /// User + system seconds of process `pid` so far (`/proc/<pid>/stat`), or 0 when it is gone.
    static func seconds(of pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), // gone: it counts nothing more
              let close = text.lastIndex(of: ")") else { return 0 }
        // Fields after the command name: state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// User + system seconds of this process and of its children that have been waited for.
    static func ownAndReaped() -> (own: Double, reaped: Double) {
        func seconds(_ who: __rusage_who) -> Double {
            var usage = rusage()
            getrusage(who.rawValue, &usage)
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
        return (seconds(RUSAGE_SELF), seconds(RUSAGE_CHILDREN))
    }

    /// CPU seconds the calling thread has used.
    static func threadSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

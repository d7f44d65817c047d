import Foundation

/// Measures what each local VM demands of the CPU, from its QEMU's vCPU threads
/// (`/proc/<pid>/task/<tid>/schedstat`: nanoseconds run, then nanoseconds waited to run: QEMU's
/// equivalent of CPU ready time). Demand = (run + wait) per second of wall time, smoothed.
struct VMDemandSampler: Sendable {
    struct Sample: Sendable {
        var cpuNanoseconds: UInt64
        var at: ContinuousClock.Instant
        /// Smoothed demand, thousandths of a core (nil until two samples).
        var milli: Int?
    }

    /// Weight of the newest interval in the smoothed demand.
    static let smoothing = 0.5

    /// Sums run + wait of the vCPU threads (named "CPU n/TCG", "CPU n/KVM") of QEMU `pid`; nil
    /// when the process is gone or unreadable.
    static func vcpuNanoseconds(pid: Int32) -> UInt64? {
        let tasks = "/proc/\(pid)/task"
        // Unreadable: the process is gone (it exited or was never there); nothing to measure.
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: tasks) else { return nil }
        var total: UInt64 = 0
        var found = false
        for tid in tids {
            // A thread that exits between the listing and the read has nothing more to count.
            guard let comm = try? String(contentsOfFile: "\(tasks)/\(tid)/comm", encoding: .utf8), comm.hasPrefix("CPU "),
                  let stat = try? String(contentsOfFile: "\(tasks)/\(tid)/schedstat", encoding: .utf8), // gone meanwhile, as above
                  let ns = parseSchedstat(stat) else { continue }
            total += ns
            found = true
        }
        return found ? total : nil
    }

    /// Memory the VM actually uses: its QEMU's resident set (`VmRSS` of `/proc/<pid>/status`),
    /// MiB; nil when unreadable (the process is gone).
    static func residentMiB(pid: Int32) -> Int? {
        // Unreadable: the process is gone; nothing to measure.
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(whereSeparator: \.isWhitespace).dropFirst().first ?? "") else { return nil }
        return kib / 1024
    }

    /// run + wait from a schedstat line ("run wait timeslices").
    static func parseSchedstat(_ line: String) -> UInt64? {
        let fields = line.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 2, let run = UInt64(fields[0]), let wait = UInt64(fields[1]) else { return nil }
        return run + wait
    }

    /// The next sample of a VM from the previous one and a new reading. An interval that does not
    /// `measure` the VM (a migration on the host overlapped it) only moves the baseline: the demand
    /// stays what it was.
    static func next(after previous: Sample?, reading: UInt64, at now: ContinuousClock.Instant, measures: Bool = true) -> Sample {
        guard measures, let previous, reading >= previous.cpuNanoseconds, now > previous.at else {
            return Sample(cpuNanoseconds: reading, at: now, milli: previous?.milli)
        }
        let elapsed = now - previous.at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let milli = Double(reading - previous.cpuNanoseconds) / 1e6 / seconds
        let smoothed = previous.milli.map { Self.smoothing * milli + (1 - Self.smoothing) * Double($0) } ?? milli
        return Sample(cpuNanoseconds: reading, at: now, milli: Int(smoothed.rounded()))
    }
}

import Foundation

/// The N migrations of one concurrent batch: they start together (`start`) and the batch's CPU is
/// sampled when the last one has started and when the last one has ended (`end`).
final class ConcurrentGroup: Sendable {
    let start: Barrier
    let end: Barrier
    private let samples: CPUSamples

    init(count: Int, work: String) {
        let samples = CPUSamples(work: work)
        self.samples = samples
        start = Barrier(count: count) { await samples.begin() }
        end = Barrier(count: count) { await samples.finish() }
    }

    /// CPU seconds every process involved spent between the two samples.
    func cpuSeconds() async -> Double { await samples.seconds }
}

/// Waits until `count` tasks arrived, runs `released` once, then lets them all go on. Broken
/// (one of them failed): everyone goes on at once, now and later.
actor Barrier {
    private let count: Int
    private let released: @Sendable () async -> Void
    private var arrived = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var open = false

    init(count: Int, released: @escaping @Sendable () async -> Void) {
        self.count = count
        self.released = released
    }

    func arrive() async {
        guard !open else { return }
        arrived += 1
        if arrived == count {
            open = true
            await released()
            for waiter in waiting { waiter.resume() }
            waiting = []
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func breakAll() {
        open = true
        for waiter in waiting { waiter.resume() }
        waiting = []
    }
}

/// CPU of this process (the in-process agents), of the children it reaped, and of every process
/// whose command line names the work directory (the QEMUs), between `begin` and `finish`. A
/// process that ends meanwhile is reaped by this process (the agents and the direct runs launch
/// them), so its whole lifetime is in the reaped figure, and its CPU at `begin` is taken off.
actor CPUSamples {
    let work: String
    private var own0 = 0.0, reaped0 = 0.0, alive0 = 0.0
    private(set) var seconds = 0.0

    init(work: String) { self.work = work }

    func begin() {
        (own0, reaped0) = ProcessCPU.ownAndReaped()
        alive0 = Self.processes(mentioning: work + "/").reduce(0) { $0 + ProcessCPU.seconds(of: $1) }
    }

    func finish() {
        let (own1, reaped1) = ProcessCPU.ownAndReaped()
        let alive1 = Self.processes(mentioning: work + "/").reduce(0) { $0 + ProcessCPU.seconds(of: $1) }
        seconds = (own1 - own0) + (reaped1 - reaped0) + alive1 - alive0
    }

    /// Processes other than this one whose command line contains `text`.
    static func processes(mentioning text: String) -> [Int32] {
        // Unreadable /proc: no process is counted (the figure is then this process's alone).
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard let pid = Int32(entry), pid != getpid(), let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            return String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(text) ? pid : nil
        }
    }
}

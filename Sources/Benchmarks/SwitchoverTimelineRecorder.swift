import Foundation
import Logging
import MigrationService
import Synchronization

/// Collects the agents' switchover timeline records (`SwitchoverTrace`) of a benchmark's local
/// mesh, with their times (the record's own or QEMU's), and passes errors on to standard error
/// as the mesh's logger did before. `take()` returns and forgets what came so far.
final class SwitchoverTimelineRecorder: Sendable {
    /// One point: its name and when, seconds since the Unix epoch.
    struct Point: Sendable {
        var name: String
        var at: Double
    }

    private let points = Mutex<[Point]>([])

    func record(_ point: Point) { points.withLock { $0.append(point) } }

    func take() -> [Point] { points.withLock { taken in defer { taken = [] }; return taken } }

    /// A log handler feeding this recorder; records below `.error` without a timeline point are dropped.
    func handler(label: String) -> any LogHandler { Handler(recorder: self, errors: StreamLogHandler.standardError(label: label)) }

    /// Milliseconds of each point after `origin`'s first occurrence, in time order ("-" if
    /// there is no origin), e.g. "source-port-paused +3.1".
    static func describe(_ points: [Point], from origin: String) -> [(name: String, ms: Double)] {
        guard let zero = points.first(where: { $0.name == origin })?.at else { return [] }
        return points.sorted { $0.at < $1.at }.map { ($0.name, ($0.at - zero) * 1000) }
    }

    private struct Handler: LogHandler {
        let recorder: SwitchoverTimelineRecorder
        var errors: StreamLogHandler
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            if let point = metadata?[SwitchoverTrace.pointKey] {
                let at = metadata?[SwitchoverTrace.atKey].flatMap { Double("\($0)") } ?? Date().timeIntervalSince1970
                recorder.record(Point(name: "\(point)", at: at))
            } else if level >= .error {
                errors.log(level: level, message: message, metadata: metadata, source: source, file: file, function: function, line: line)
            }
        }
    }
}

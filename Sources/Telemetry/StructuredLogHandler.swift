import Foundation
public import Logging

/// A log handler writing one line per event to standard error in a `LogLineFormat` (logfmt or
/// JSON for log collectors; text is swift-log's own `StreamLogHandler`). The level is read from
/// `level` at every event, so a reload can change it.
public struct StructuredLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: LogLineFormat
    let level: @Sendable () -> Logger.Level
    let write: @Sendable (String) -> Void

    /// A handler for `label` writing `format` lines through `write` (default: standard error,
    /// one `write(2)` per line so lines from several threads never interleave).
    public init(label: String, format: LogLineFormat, level: @escaping @Sendable () -> Logger.Level,
                write: @escaping @Sendable (String) -> Void = StructuredLogHandler.standardError) {
        self.label = label
        self.format = format
        self.level = level
        self.write = write
    }

    public var logLevel: Logger.Level {
        get { level() }
        // One level per process, from the configuration (and SIGHUP); per-logger levels are not used.
        set {}
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        if let error = event.error { merged["error"] = "\(error)" }
        write(format.line(timestamp: Self.timestamp(), level: event.level, label: label, message: "\(event.message)",
                          source: event.source, metadata: merged) + "\n")
    }

    /// Now in RFC 3339, UTC, milliseconds.
    static func timestamp() -> String {
        Date.now.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Writes `line` to standard error in one system call.
    public static let standardError: @Sendable (String) -> Void = { line in
        let bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Foundation.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written <= 0 { return } // stderr closed or broken: a log line is not worth blocking or crashing for
            offset += written
        }
    }
}

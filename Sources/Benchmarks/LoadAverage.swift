import Foundation

/// The host's load average, printed beside benchmark figures: on the shared 2-core build
/// machines, figures taken at load 2 and at load 10 are not comparable.
public enum LoadAverage {
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages ("4.78 2.17 1.56"), or "unknown".
    public static var text: String {
        // Unreadable (not Linux): the figure is only shown, nothing depends on it.
        guard let line = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return line.split(separator: " ").prefix(3).joined(separator: " ")
    }
}

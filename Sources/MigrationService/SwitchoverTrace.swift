import Foundation
import Logging

/// The switchover's timeline as log records (info level): one record per point, with the point's
/// name under `pointKey` and, when the time is not the record's own (QEMU's event timestamps),
/// the time under `atKey` (seconds since the Unix epoch). `hostmesh bench network --timeline`
/// collects them to show where a peer's TCP stall goes (README, "Frames held across the
/// switchover").
public enum SwitchoverTrace {
    public static let pointKey = "switchover.point"
    public static let atKey = "switchover.at"

    /// Logs `point` now (or at `at`, epoch seconds) for `vm`.
    static func mark(_ logger: Logger, _ point: String, vm: String, at: Double? = nil) {
        var metadata: Logger.Metadata = [pointKey: "\(point)", "vm.id": "\(vm)"]
        if let at { metadata[atKey] = "\(String(format: "%.6f", at))" }
        logger.info("switchover timeline", metadata: metadata)
    }
}

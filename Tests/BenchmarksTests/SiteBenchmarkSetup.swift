@testable import Benchmarks
import Foundation

/// Where the test finds the repository, the test guest and the hostmesh executable.
enum SiteBenchmarkSetup {
    static var repository: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }
    static var guest: String { repository + "/Deploy/out/guest" }
    /// The hostmesh executable SwiftPM builds beside the test bundle.
    static var binary: String {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [here, here.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("hostmesh").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return here.appendingPathComponent("hostmesh").path
    }
    static var available: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: LabSites.ip) && FileManager.default.fileExists(atPath: guest + "/kernel")
            && FileManager.default.isExecutableFile(atPath: binary)
    }
}

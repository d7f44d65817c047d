import Foundation
import Logging
import ServiceLifecycle

/// Rotates this host's key by itself once `host.key` is `maximumAge` seconds old (its file's
/// modification time, which a rotation renews). A failed rotation (no issuer) is retried every
/// tenth of the age, at most hourly. Off when `maximumAge` is 0.
struct KeyRotationService: Service {
    let rotator: KeyRotator
    let keyPath: String
    let maximumAge: Int64
    let logger: Logger

    func run() async throws {
        guard maximumAge > 0 else { return }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let modified = (try? FileManager.default.attributesOfItem(atPath: keyPath)[.modificationDate] as? Date) ?? nil // unreadable: treated as new, checked again later
                let age = Int64(Date().timeIntervalSince(modified ?? Date()))
                if age < maximumAge {
                    try? await Task.sleep(for: .seconds(min(maximumAge - age, 3_600))) // cancelled: the loop ends
                    continue
                }
                do {
                    logger.info("the host key reached its rotation age; rotating", metadata: ["mesh.key_age_s": "\(age)"])
                    _ = try await rotator.rotate()
                } catch {
                    logger.warning("automatic key rotation failed; will retry", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(min(max(maximumAge / 10, 1), 3_600))) // cancelled: the loop ends
                }
            }
        }
    }
}

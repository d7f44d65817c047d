import Logging
import MeshIdentity
import ServiceLifecycle

/// Keeps every key retirement the trust store records (`RetiredKeyRegistry.record(with:)`) in
/// the store, in order (Protocol.md §3.9). The registry is told on an event loop, which must not
/// wait for SQLite, so the retirements queue in a stream this service drains.
struct RetiredKeyService: Service {
    let store: RetiredKeyStore
    let retirements: AsyncStream<RetiredKeyRegistry.Retirement>
    let logger: Logger

    /// Before any listener: puts the kept retirements back into `registry` and starts recording
    /// new ones into a stream the returned service drains.
    static func wire(_ registry: RetiredKeyRegistry, store: RetiredKeyStore, logger: Logger) throws -> RetiredKeyService {
        let (kept, damaged) = try store.all()
        for retirement in kept { registry.restore(retirement) }
        if !damaged.isEmpty {
            logger.error("retired keys that do not decode were skipped", metadata: ["mesh.hosts": "\(damaged)"])
        }
        if !kept.isEmpty { logger.info("retired host keys restored", metadata: ["mesh.count": "\(kept.count)"]) }
        let (stream, continuation) = AsyncStream<RetiredKeyRegistry.Retirement>.makeStream()
        registry.record { continuation.yield($0) }
        return RetiredKeyService(store: store, retirements: stream, logger: logger)
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await retirement in retirements {
                do {
                    try await store.save(retirement)
                    logger.info("retired host key kept", metadata: ["mesh.peer": "\(retirement.hostID)", "mesh.key": "\(retirement.key.fingerprint)"])
                } catch {
                    // It stays in the registry: only a restart forgets it.
                    logger.error("cannot keep a retired key: after a restart it would be accepted again until its certificate ends", metadata: [
                        "mesh.peer": "\(retirement.hostID)", "mesh.key": "\(retirement.key.fingerprint)", "error": "\(error)"])
                }
            }
        }
    }
}

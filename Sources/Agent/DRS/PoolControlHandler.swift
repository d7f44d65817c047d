import ControlAPI
import Foundation
import Placement

/// The resource pool methods (Protocol.md §10.9): `pool.create`, `pool.set`, `pool.list`,
/// `pool.remove`. Pools are replicated records (`pool/<name>`), checked against the mesh as this
/// agent sees it when written.
struct PoolControlHandler: Sendable {
    let controller: DRSController

    static let methods: Set<String> = ["pool.create", "pool.set", "pool.list", "pool.remove"]

    func handle(_ request: ControlRequest) async throws -> any Encodable & Sendable {
        switch request.method {
        case "pool.create", "pool.set":
            let change = try request.params(PoolTypes.Change.self)
            let existing = await controller.pools.first { $0.name == change.name }
            let base: ResourcePool
            if request.method == "pool.create" {
                guard existing == nil else { throw ControlError.conflict("pool \(change.name) exists: change it with `hostmesh pool set \(change.name) …`") }
                base = ResourcePool(name: change.name)
            } else {
                guard let existing else { throw ControlError.notFound("no pool named \(change.name): `hostmesh pool list` shows them, `hostmesh pool create` makes one") }
                base = existing
            }
            var pool = change.applied(to: base)
            for shares in [change.cpuShares, change.memoryShares].compactMap({ $0 }) where !(1...1_000_000).contains(shares) {
                throw ControlError.badRequest("shares \(shares) are out of range: give low (500), normal (1000), high (2000) or 1-1000000")
            }
            pool.name = change.name
            let (_, view) = await controller.decide()
            do { try ResourceAdmission.check(pool: pool, in: view) } catch { throw ControlError.badRequest(error.description) }
            try await controller.write(DRSRecordBody.poolKey(pool.name), .pool(pool))
            return ControlTypes.Text(text: "pool \(pool.name) \(request.method == "pool.create" ? "created" : "changed") (replicated to every agent)")
        case "pool.list":
            let (_, view) = await controller.decide()
            return await controller.recordRows().compactMap { record -> PoolTypes.Row? in
                guard case .pool(let pool)? = record.body else { return nil }
                let members = view.vms.filter { $0.pool == pool.name }
                return PoolTypes.Row(pool: pool, version: record.version, writer: record.writer, vms: members.map(\.name).sorted(),
                                     cpuReserved: members.reduce(0) { $0 + $1.cpu.reservation }, memoryReserved: members.reduce(0) { $0 + $1.memory.reservation })
            }
        case "pool.remove":
            let p = try request.params(PoolTypes.Remove.self)
            guard await controller.pools.contains(where: { $0.name == p.name }) else {
                throw ControlError.notFound("no pool named \(p.name): `hostmesh pool list` shows them")
            }
            let (_, view) = await controller.decide()
            let members = view.vms.filter { $0.pool == p.name }.map(\.name).sorted()
            guard members.isEmpty else {
                throw ControlError.conflict("pool \(p.name) still has VMs (\(members.joined(separator: ", "))): delete them or define them in another pool first")
            }
            try await controller.write(DRSRecordBody.poolKey(p.name), nil)
            return ControlTypes.Text(text: "pool \(p.name) removed (replicated to every agent)")
        default:
            throw ControlError.badRequest("unknown method \"\(request.method)\"")
        }
    }
}

/// The pre-flight checklist of a migration (`hostmesh migrate VM --to HOST --check`, and run
/// before every migration): one line per item, checked on the source and on the destination
/// (Protocol.md §6.8).
public struct PreflightReport: Codable, Sendable, Equatable {
    /// One checked item.
    public struct Item: Codable, Sendable, Equatable {
        /// What was checked: vm, machine, cpu-model, capacity, shared-disk N, network, destination.
        public var name: String
        /// Passed.
        public var ok: Bool
        /// What was found.
        public var detail: String
        /// What to do about it; nil when it passed.
        public var fix: String?

        public init(name: String, ok: Bool, detail: String, fix: String? = nil) {
            self.name = name
            self.ok = ok
            self.detail = detail
            self.fix = fix
        }
    }

    /// The VM, as named.
    public var vm: String
    /// The destination, as asked.
    public var destination: String
    /// Every item, source's first.
    public var items: [Item]

    public init(vm: String, destination: String, items: [Item]) {
        self.vm = vm
        self.destination = destination
        self.items = items
    }

    /// True when every item passed.
    public var passed: Bool { items.allSatisfy(\.ok) }

    /// The lines `migrate --check` prints: "✓ name: detail" or "✗ name: detail; fix: …".
    public var lines: [String] {
        items.map { item in
            item.ok ? "✓ \(item.name): \(item.detail)" : "✗ \(item.name): \(item.detail)" + (item.fix.map { "\n    fix: \($0)" } ?? "")
        }
    }
}

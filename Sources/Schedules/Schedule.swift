/// A scheduled operation (Protocol.md §12.1): an action on one object at `atUnix` (UTC seconds)
/// and, with `everySeconds`, again at every interval after. Replicated to every agent; its
/// occurrences are numbered from 0 and each runs at most once, on one host (§12.3).
public struct Schedule: Sendable, Hashable, Codable {
    /// Short random id chosen where it was created.
    public var id: String
    /// The first occurrence, unix seconds (UTC).
    public var atUnix: Int64
    /// Seconds between occurrences; nil: it runs once.
    public var everySeconds: Int64?
    public var action: ScheduledAction
    /// Host id of the agent that created it, and when (display only).
    public var createdBy: String
    public var createdAtUnix: Int64

    public init(id: String, atUnix: Int64, everySeconds: Int64? = nil, action: ScheduledAction, createdBy: String, createdAtUnix: Int64) {
        self.id = id
        self.atUnix = atUnix
        self.everySeconds = everySeconds
        self.action = action
        self.createdBy = createdBy
        self.createdAtUnix = createdAtUnix
    }

    /// When occurrence `index` is due.
    public func time(of index: Int) -> Int64 { atUnix + Int64(index) * (everySeconds ?? 0) }

    /// The latest occurrence due at `nowUnix` (nil: none yet).
    public func latestDue(at nowUnix: Int64) -> Int? {
        guard nowUnix >= atUnix else { return nil }
        guard let every = everySeconds, every > 0 else { return 0 }
        return Int((nowUnix - atUnix) / every)
    }

    /// The first occurrence after `nowUnix` (nil: a one-shot schedule already due).
    public func next(after nowUnix: Int64) -> Int? {
        guard let latest = latestDue(at: nowUnix) else { return 0 }
        return everySeconds == nil ? nil : latest + 1
    }

    /// The id an occurrence is journaled and replicated by: `<schedule id>#<index>`.
    public func occurrenceID(_ index: Int) -> String { "\(id)#\(index)" }
}

/// What a schedule does at each occurrence.
public enum ScheduledAction: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Migrate the VM (name or id) to `to`, or with nil to the host placement chooses. Run by
    /// the VM's owner at that moment.
    case migrate(vm: String, to: String?)
    /// Put the host in maintenance. Run by that host.
    case enterMaintenance(host: String)

    /// What it acts on: two schedules on one object at one time are refused (§12.2).
    public var object: String {
        switch self {
        case .migrate(let vm, _): "vm \(vm)"
        case .enterMaintenance(let host): "host \(host)"
        }
    }

    /// As an operator would type it after `hostmesh schedule add ... --`.
    public var description: String {
        switch self {
        case .migrate(let vm, let to): "migrate \(vm) " + (to.map { "--to \($0)" } ?? "--auto")
        case .enterMaintenance(let host): "host maintenance enter \(host)"
        }
    }
}

/// Where fault-injection tests reach into the migration shell: an observer of the migration
/// points, and a wrapper around the journal (to make its writes fail). Production uses the
/// defaults, which change nothing. No library reads the environment for these: the `hostmesh`
/// executable builds them from its test options.
public struct MigrationTestSeams: Sendable {
    /// Sees every migration point.
    public var observer: any MigrationObserver
    /// Wraps the agent's journal.
    public var wrapJournal: @Sendable (any MigrationJournaling) -> any MigrationJournaling

    /// Seams that change nothing.
    public init(observer: any MigrationObserver = NoMigrationObserver(),
                wrapJournal: @escaping @Sendable (any MigrationJournaling) -> any MigrationJournaling = { $0 }) {
        self.observer = observer
        self.wrapJournal = wrapJournal
    }
}

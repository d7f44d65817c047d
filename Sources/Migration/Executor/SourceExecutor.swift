/// The one interpreter of `SourceMigration`: the live migration and recovery after a restart
/// both run it, over different environments (Protocol.md §6.4, §6.5). It carries out every
/// directive, in order, and feeds the machine what each one reports; a failed durable write
/// becomes an event, so the machine, not the shell, decides what follows. The `switch` has no
/// `default`: a new directive does not compile until it is carried out here.
public struct SourceExecutor<Environment: SourceMigrationEnvironment> {
    /// The machine, as the directives left it.
    public private(set) var machine: SourceMigration
    /// Where the directives are carried out.
    public let environment: Environment
    /// How many times one `handle` call may ask the peer: a destination that keeps answering
    /// `receiving` is asked again by the in-doubt retry loop, not in a tight loop here.
    public var maxQueriesPerEvent = 3

    /// An executor for `machine` (new, or read back from the journal).
    public init(machine: SourceMigration, environment: Environment) {
        self.machine = machine
        self.environment = environment
    }

    /// Feeds `event`, then carries out every directive it leads to, including those of the
    /// events the directives report, until nothing is left to do now.
    public mutating func handle(_ event: SourceMigration.Event) async {
        var queue = machine.handle(event)
        var queries = 0
        while !queue.isEmpty {
            let directive = queue.removeFirst()
            switch directive {
            case .journal(let phase):
                do { try await environment.journal(phase) } catch {
                    // What was queued after it must not happen unless the machine says so.
                    queue = machine.handle(.journalFailed("\(error)"))
                }
            case .sendPrepare:
                queue += report(await environment.sendPrepare())
            case .openTransfer:
                queue += report(await environment.openTransfer())
            case .startMirrors:
                queue += report(await environment.startMirrors())
            case .startTransfer:
                queue += report(await environment.startTransfer())
            case .cancelMirrors:
                await environment.cancelMirrors()
            case .deleteSourceDisks:
                await environment.deleteSourceDisks()
            case .sendCommit:
                queue += report(await environment.sendCommit())
            case .sendAbort(let reason):
                await environment.sendAbort(reason)
            case .queryPeer:
                queries += 1
                guard queries <= maxQueriesPerEvent else { continue }
                queue += report(await environment.queryPeer())
            case .reclaim:
                do { try await environment.reclaim() } catch {
                    queue = machine.handle(.reclaimFailed("\(error)"))
                }
            case .resumeLocal:
                await environment.resumeLocal()
            case .keepPaused:
                await environment.keepPaused()
            case .releaseLocal:
                do {
                    try await environment.releaseLocal()
                    queue += machine.handle(.released)
                } catch {
                    queue = machine.handle(.releaseFailed("\(error)"))
                }
            case .succeeded:
                await environment.succeeded()
            case .failed(let failure):
                await environment.failed(failure)
            }
        }
    }

    private mutating func report(_ event: SourceMigration.Event?) -> [SourceMigration.Directive] {
        event.map { machine.handle($0) } ?? []
    }
}

extension SourceExecutor: Sendable where Environment: Sendable {}

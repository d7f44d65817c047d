/// The one interpreter of `DestinationMigration`: messages from the source and recovery after a
/// restart both run it, over different environments (Protocol.md §6.4, §6.5). It carries out
/// every directive in order and feeds the machine what each one reports; a failed journal write
/// becomes an event, so the machine decides what follows. The `switch` has no `default`.
public struct DestinationExecutor<Environment: DestinationMigrationEnvironment> {
    /// The machine, as the directives left it.
    public private(set) var machine: DestinationMigration
    /// Where the directives are carried out.
    public let environment: Environment

    /// An executor for `machine` (new, or read back from the journal).
    public init(machine: DestinationMigration, environment: Environment) {
        self.machine = machine
        self.environment = environment
    }

    /// Feeds `event`, then carries out every directive it leads to, including those of the
    /// events the directives report.
    public mutating func handle(_ event: DestinationMigration.Event) async {
        var queue = machine.handle(event)
        while !queue.isEmpty {
            let directive = queue.removeFirst()
            switch directive {
            case .journal(let phase):
                let reason: String?
                if case .discarded(let why) = machine.verdict { reason = why } else { reason = nil }
                do { try await environment.journal(phase, reason: reason) } catch {
                    queue = machine.handle(.journalFailed("\(error)"))
                }
            case .launchIncoming:
                queue += report(await environment.launchIncoming())
            case .replyPrepared(let refusal):
                await environment.replyPrepared(refusal: refusal)
            case .resume:
                queue += report(await environment.resume())
            case .replyCommitted(let error):
                await environment.replyCommitted(error: error)
            case .discard:
                await environment.discard()
            case .replyVerdict(let verdict):
                await environment.replyVerdict(verdict)
            }
        }
    }

    private mutating func report(_ event: DestinationMigration.Event?) -> [DestinationMigration.Directive] {
        event.map { machine.handle($0) } ?? []
    }
}

extension DestinationExecutor: Sendable where Environment: Sendable {}

/// What an operator asks of an in-doubt handover (`hostmesh vm resolve`). The decisions that can
/// make two copies carry the operator's confirmation of the fact that makes them safe; the agent
/// refuses them without it.
public enum ResolveDecision: Sendable, Equatable {
    /// Show the state and the choices.
    case show
    /// Ask the destination again.
    case retry
    /// Resume the guest here: only safe if the destination is down and cannot come back with the
    /// VM; `destinationFenced` is the operator's word that it is.
    case resumeHere(destinationFenced: Bool)
    /// Release the copy here: only safe if the guest runs on the destination;
    /// `destinationRunsIt` is the operator's word that it does.
    case releaseHere(destinationRunsIt: Bool)
}

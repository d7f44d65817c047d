public import MeshTime

extension SwitchCore {
    /// Source, during pre-copy: the port's whole state. Opens a new generation; the next
    /// `exportPortDelta` carries what changes after this call.
    public mutating func exportPortState(_ id: PortID, now: MeshInstant) throws(SwitchError) -> PortStateRecord {
        var port = try port(id)
        let (connections, generation) = port.conntrack.snapshot(now: now)
        port.exportedGeneration = generation
        ports[id] = port
        return PortStateRecord(configuration: port.configuration, segment: port.segment, counters: port.counters,
                               learned: learnedAddresses(port, now: now), connections: connections,
                               generation: generation, mobilitySequence: mobilitySequence(port))
    }

    /// Source: what changed since `base` (default: the last export of this port).
    public mutating func exportPortDelta(_ id: PortID, since base: UInt64? = nil, now: MeshInstant) throws(SwitchError) -> PortStateDelta {
        try delta(id, since: base, final: false, now: now)
    }

    /// Source, at switchover: freezes the port (nothing in or out; counters final) and returns
    /// the final delta since the last export. Then either `forwardStragglers` (the destination
    /// took over) or `unfreezePort` (roll back).
    ///
    /// `destination`: the host the VM moves to. Frames held since the pause, and those that
    /// arrive from now on, go there at once with the forwarded flag (its blocked port holds them
    /// until the guest announces itself, §8.6.1) instead of waiting here for `forwardStragglers`;
    /// if the move then rolls back, those are lost (counted there). Read the directives with
    /// `takeDirectives()`.
    public mutating func freezePort(_ id: PortID, destination: HostID? = nil, now: MeshInstant) throws(SwitchError) -> PortStateDelta {
        let port = try port(id)
        guard port.lifecycle == .active else { throw .wrongState(id, is: port.lifecycle, operation: "freeze") }
        ports[id]?.lifecycle = .frozen
        ports[id]?.pausedUntil = nil  // frozen holds frames by itself, with no end of its own
        ports[id]?.movingTo = destination
        let final = try delta(id, since: nil, final: true, now: now)
        if settings.holdFramesDuringMoves, let destination, destination != localHost {
            ports[id]?.frozenFor = destination
            forwardHeld(id, to: destination)
        }
        return final
    }

    /// Directives a call that returns something else produced (`freezePort` with a destination).
    public mutating func takeDirectives() -> [SwitchDirective] { takeOutput() }

    private mutating func delta(_ id: PortID, since base: UInt64?, final: Bool, now: MeshInstant) throws(SwitchError) -> PortStateDelta {
        var port = try port(id)
        let change = port.conntrack.delta(since: base ?? port.exportedGeneration ?? 0, now: now)
        port.exportedGeneration = change.toGeneration
        ports[id] = port
        return PortStateDelta(port: id, fromGeneration: change.fromGeneration, toGeneration: change.toGeneration,
                              fullResync: change.fullResync, counters: port.counters, learned: learnedAddresses(port, now: now),
                              upserts: change.upserts, removals: change.removals, isFinal: final,
                              mobilitySequence: mobilitySequence(port))
    }

    /// Destination, during pre-copy: creates the port from the source's record, blocked until
    /// the VM announces itself here. The network is mapped by name (its local segment is used).
    ///
    /// - Throws: `SwitchError.unknownNetwork`, `.portExists`, `.invalidMAC`, `.macInUse`.
    public mutating func importPort(_ record: PortStateRecord, activationDeadline: MeshInstant? = nil,
                                    now: MeshInstant) throws(SwitchError) {
        var port = try makePort(record.configuration, initialState: .blocked(activationDeadline: activationDeadline))
        port.baseline = record.counters
        port.importedSequence = record.mobilitySequence
        port.importedGeneration = record.generation
        port.conntrack.apply(upserts: record.connections, removals: [], replacing: true, now: now)
        port.learned = Dictionary(record.learned.map { ($0.ip, now.minus(milliseconds: $0.idleMilliseconds)) }) { a, _ in a }
        insert(port)
    }

    /// Destination: tops the imported port up with a delta (pre-copy rounds and the final one).
    /// Deltas must follow each other (`fromGeneration` = the previous `toGeneration`) unless
    /// `fullResync`. Once the port is active, connections it already tracks are kept.
    public mutating func applyPortDelta(_ delta: PortStateDelta, now: MeshInstant) throws(SwitchError) {
        var port = try port(delta.port)
        switch port.lifecycle {
        case .blocked, .active: break
        default: throw .wrongState(delta.port, is: port.lifecycle, operation: "apply a state delta to")
        }
        if !delta.fullResync, let expected = port.importedGeneration, delta.fromGeneration != expected {
            throw .invalidRecord("delta for \(delta.port) starts at generation \(delta.fromGeneration) but the port has "
                + "\(expected): resend the full state or a delta since \(expected)")
        }
        let blocked = port.lifecycle == .blocked
        let upserts = blocked ? delta.upserts : delta.upserts.filter { port.conntrack.entries[$0.key] == nil }
        port.conntrack.apply(upserts: upserts, removals: blocked ? delta.removals : [],
                             replacing: delta.fullResync && blocked, now: now)
        port.baseline = port.baseline.fieldwiseMax(delta.counters)
        for address in delta.learned where port.learned[address.ip] == nil {
            port.learned[address.ip] = now.minus(milliseconds: address.idleMilliseconds)
        }
        port.importedSequence = max(port.importedSequence, delta.mobilitySequence)
        port.importedGeneration = delta.toGeneration
        ports[delta.port] = port
    }

    private func learnedAddresses(_ port: Port, now: MeshInstant) -> [LearnedAddress] {
        port.learned.map { LearnedAddress(ip: $0.key, idleMilliseconds: now.milliseconds(since: $0.value)) }
            .sorted { $0.ip < $1.ip }
    }

    private func mobilitySequence(_ port: Port) -> UInt64 {
        max(port.importedSequence, locations.entry(mac: port.mac, segment: port.segment)?.location.sequence ?? 0)
    }
}

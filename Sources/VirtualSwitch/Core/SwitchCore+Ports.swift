public import MeshTime

extension SwitchCore {
    /// How a port starts.
    public enum InitialState: Hashable, Sendable {
        /// Forwarding at once; its location is claimed now (a VM booting here).
        case active
        /// Fully configured but inactive until the VM announces itself (an incoming migration).
        /// If `activationDeadline` passes first, `activationTimedOut` is reported.
        case blocked(activationDeadline: MeshInstant?)
    }

    /// Creates a port for a VM NIC.
    ///
    /// - Throws: `SwitchError.unknownNetwork`, `.portExists`, `.invalidMAC`, `.macInUse`.
    public mutating func createPort(_ configuration: PortConfiguration, initialState: InitialState = .active,
                                    now: MeshInstant) throws(SwitchError) -> [SwitchDirective] {
        let port = try makePort(configuration, initialState: initialState)
        insert(port)
        if port.isActive { claim(configuration.id, now: now) }
        return takeOutput()
    }

    func makePort(_ configuration: PortConfiguration, initialState: InitialState) throws(SwitchError) -> Port {
        guard let network = networks[configuration.network] else { throw .unknownNetwork(configuration.network) }
        guard ports[configuration.id] == nil else { throw .portExists(configuration.id) }
        guard !configuration.mac.isMulticast, configuration.mac != .zero else { throw .invalidMAC(configuration.mac) }
        if let other = portsByMAC[LocationTable.Key(mac: configuration.mac, segment: network.segment)] {
            throw .macInUse(configuration.mac, segment: network.segment, port: other)
        }
        var port = Port(configuration: configuration, segment: network.segment, lifecycle: .active, settings: settings)
        if case let .blocked(deadline) = initialState {
            port.lifecycle = .blocked
            port.activationDeadline = deadline
        }
        return port
    }

    mutating func insert(_ port: Port) {
        let id = port.configuration.id
        ports[id] = port
        portsByMAC[LocationTable.Key(mac: port.mac, segment: port.segment)] = id
        var members = portsBySegment[port.segment, default: []]
        members.insert(id, at: members.firstIndex { $0 > id } ?? members.endIndex)
        portsBySegment[port.segment] = members
    }

    /// Removes a port. An active port withdraws its location (the VM is gone, not moved).
    public mutating func removePort(_ id: PortID, now: MeshInstant) throws(SwitchError) -> [SwitchDirective] {
        detach(try port(id), now: now)
        return takeOutput()
    }

    mutating func detach(_ port: Port, now: MeshInstant) {
        let id = port.configuration.id
        counters.heldFramesDropped &+= UInt64(port.held.count)
        ports[id] = nil
        portsByMAC[LocationTable.Key(mac: port.mac, segment: port.segment)] = nil
        portsBySegment[port.segment]?.removeAll { $0 == id }
        if portsBySegment[port.segment]?.isEmpty == true { portsBySegment[port.segment] = nil }
        if port.isActive, let entry = locations.entry(mac: port.mac, segment: port.segment), entry.location.host == localHost {
            var withdrawal = entry.location
            withdrawal.withdrawn = true
            withdrawal.ips = []
            let hosts = locations.floodHosts(segment: port.segment)
            _ = locations.apply(withdrawal, now: now)
            announce(withdrawal, to: hosts)
        }
    }

    /// Activates a blocked port (normally automatic on the VM's announcement; the coordinator
    /// may call it when it knows the VM runs here). Claims the location with a higher mobility
    /// sequence number and pushes it to the hosts with ports on the segment.
    public mutating func activatePort(_ id: PortID, now: MeshInstant) throws(SwitchError) -> [SwitchDirective] {
        let port = try port(id)
        guard port.lifecycle == .blocked else { throw .wrongState(id, is: port.lifecycle, operation: "activate") }
        activate(id, now: now)
        return takeOutput()
    }

    /// Gives a blocked port a deadline for its VM's announcement (`activationTimedOut` after
    /// it). Armed when the VM resumes here, not at import: pre-copy may take any time. An
    /// already active port has nothing to wait for.
    public mutating func armActivation(_ id: PortID, deadline: MeshInstant) throws(SwitchError) -> [SwitchDirective] {
        let port = try port(id)
        guard port.lifecycle == .blocked else { return [] }
        ports[id]?.activationDeadline = deadline
        return []
    }

    mutating func activate(_ id: PortID, now: MeshInstant) {
        ports[id]?.lifecycle = .active
        ports[id]?.activationDeadline = nil
        if let location = claim(id, now: now) {
            output.append(.event(.portActivated(id, location: location)))
        }
        // What came for the VM while it was on its way (forwarded by its old host, or sent here
        // directly), before anything newer.
        releaseHeld(id, now: now)
    }

    /// Rolls a frozen port back to active (the migration failed before switchover). If another
    /// host took the MAC meanwhile, the location is claimed back with a higher sequence number.
    public mutating func unfreezePort(_ id: PortID, now: MeshInstant) throws(SwitchError) -> [SwitchDirective] {
        let port = try port(id)
        if port.lifecycle == .active, port.pausedUntil != nil {
            return try resumePort(id, now: now)  // paused but not yet frozen: the guest runs here again
        }
        guard port.lifecycle == .frozen else { throw .wrongState(id, is: port.lifecycle, operation: "unfreeze") }
        ports[id]?.lifecycle = .active
        ports[id]?.frozenFor = nil
        ports[id]?.movingTo = nil
        if locations.entry(mac: port.mac, segment: port.segment)?.location.host != localHost {
            claim(id, now: now)
        }
        releaseHeld(id, now: now)
        return takeOutput()
    }

    /// After switchover: frames still arriving here for the port's MAC go to `host` (the VM's
    /// new host) for `grace`, then the port is removed (`portRemoved`).
    /// Frames held while the port was paused and frozen go to `host` first, in order (§8.6.1).
    public mutating func forwardStragglers(_ id: PortID, to host: HostID, grace: Duration? = nil,
                                           now: MeshInstant) throws(SwitchError) -> [SwitchDirective] {
        let port = try port(id)
        guard port.lifecycle == .frozen else { throw .wrongState(id, is: port.lifecycle, operation: "forward stragglers of") }
        ports[id]?.lifecycle = .forwardingStragglers(to: host, until: now + (grace ?? settings.defaultStragglerGrace))
        ports[id]?.frozenFor = nil
        forwardHeld(id, to: host)
        return takeOutput()
    }

    /// Replaces a port's security policy (connections already tracked stay allowed).
    public mutating func updatePolicy(_ id: PortID, policy: SecurityPolicy) throws(SwitchError) {
        _ = try port(id)
        ports[id]?.configuration.policy = policy
    }

    /// Operator action: clears a MAC's duplicate/frozen flags so updates are processed again.
    public mutating func clearLocationFlags(mac: MACAddress, segment: SegmentID) -> Bool {
        locations.clearFlags(mac: mac, segment: segment)
    }

    // MARK: location claims

    /// Claims the port's MAC for this host: the same sequence number if the location is already
    /// ours (a refresh), else one above the highest known. Pushes and publishes the result.
    /// Returns the location, or nil if the table refused it (MAC frozen elsewhere).
    @discardableResult
    mutating func claim(_ id: PortID, now: MeshInstant) -> MACLocation? {
        guard let port = ports[id] else { return nil }
        let current = locations.entry(mac: port.mac, segment: port.segment)?.location
        let sequence: UInt64
        if let current, current.host == localHost, current.sequence >= port.importedSequence {
            sequence = current.sequence
        } else {
            // Peers' sequences are bounded (`maxSequence`); an imported one is not checked on the
            // wire, so the sum is checked here: past the bound the MAC cannot be claimed.
            let (next, overflow) = max(current?.sequence ?? 0, port.importedSequence).addingReportingOverflow(1)
            guard !overflow, next <= Self.maxSequence + 1 else {
                counters.locationsRefused &+= 1
                return nil
            }
            sequence = next
        }
        let location = MACLocation(mac: port.mac, segment: port.segment, host: localHost, sequence: sequence, ips: port.boundIPs)
        // The previous owner and everyone with ports on the segment hear it directly.
        var hosts = Set(locations.floodHosts(segment: port.segment))
        if let previous = current?.host, previous != localHost { hosts.insert(previous) }
        let outcome = locations.apply(location, now: now)
        ports[id]?.lostLocation = false
        switch outcome {
        case .accepted:
            break
        case let .frozen(moves):
            output.append(.event(.macFrozen(port.mac, segment: port.segment, host: localHost, moves: moves)))
        case .ignoredFrozen, .stale, .withdrawn, .duplicate:
            return nil
        }
        announce(location, to: hosts.sorted())
        return location
    }

    mutating func announce(_ location: MACLocation, to hosts: [HostID]) {
        if !hosts.isEmpty { output.append(.sendLocations([location], to: hosts)) }
        output.append(.event(.publish([location])))
    }
}

public import NIOCore

/// What the shell MUST do after handing an event to `SwitchCore`, in order.
public enum SwitchDirective: Sendable {
    /// Send `frame` to the VM behind `port` (one datagram to its NIC socket). If that fails,
    /// report it with `SwitchCore.recordDeliveryFailure(port:reason:)`. `held`: a frame the port
    /// held (§8.6.1), released all at once to a guest that is only now starting to read: it
    /// waits for the socket however many there are (the hold's own bounds limited them), where
    /// another frame beyond the shell's backlog bound is dropped.
    case deliver(port: PortID, frame: ByteBuffer, held: Bool = false)
    /// Encapsulate `frame` for `segment`, encrypt it for `host` and send it over the overlay.
    /// `forwarded` marks a straggler re-sent by the VM's old host (never forwarded again).
    case sendFrame(to: HostID, segment: SegmentID, frame: ByteBuffer, forwarded: Bool, flooded: Bool = false)
    /// Push these location updates directly to each of `hosts` over the overlay (control
    /// datagram). Loss is tolerated: the same updates are also in `.event(.publish)`.
    case sendLocations([MACLocation], to: [HostID])
    /// Something the agent should know or act on.
    case event(SwitchEvent)
}

/// What the switch tells the agent (and the migration coordinator).
public enum SwitchEvent: Hashable, Sendable {
    /// Spread these location updates to the whole mesh (gossip); other agents feed them to
    /// their switch with `LocationSource.gossip`.
    case publish([MACLocation])
    /// A blocked port saw its VM's announcement and is now active; `location` is its new
    /// location (already pushed and published).
    case portActivated(PortID, location: MACLocation)
    /// A blocked port was not activated by its deadline: the migration should roll back (the
    /// port stays blocked; remove it).
    case activationTimedOut(PortID)
    /// A straggler-forwarding port reached the end of its grace period and was removed.
    case portRemoved(PortID)
    /// An active local port's MAC was claimed by another host with a higher sequence number.
    /// The switch re-claims it when the VM next sends (counted as a move).
    case locationLost(PortID, to: HostID, sequence: UInt64)
    /// Two hosts claim the MAC with the same sequence number.
    case duplicateMAC(MACAddress, segment: SegmentID, hosts: [HostID], sequence: UInt64)
    /// The MAC moved `moves` times within the detection window and is frozen at `host`;
    /// updates for it are ignored until `clearLocationFlags`.
    case macFrozen(MACAddress, segment: SegmentID, host: HostID, moves: Int)
}

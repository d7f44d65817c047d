import Logging
import MeshTime
import NIOCore

extension VirtualSwitch {
    /// Adds a network (idempotent for the same name and segment).
    public func addNetwork(_ network: Network) async throws(VirtualSwitchError) {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            do throws(SwitchError) { try shell.core.addNetwork(network) } catch { throw .switch(error) }
        }
    }

    /// Creates the port of a VM NIC and binds its socket. Call before starting QEMU.
    ///
    /// `initialState: .active` for a VM booting here (its location is claimed at once);
    /// for an incoming migration use `importPort` instead.
    public func createPort(_ configuration: PortConfiguration, attachment: PortAttachment,
                           initialState: SwitchCore.InitialState = .active) async throws(VirtualSwitchError) {
        try await attach(configuration.id, attachment) { shell, now throws(SwitchError) in
            try shell.core.createPort(configuration, initialState: initialState, now: now)
        }
    }

    /// Destination of a migration, during pre-copy: creates the port from the source's record,
    /// blocked, and binds its socket. The port activates on the VM's first announcement (QEMU's
    /// RARP, or a gratuitous ARP); if that has not happened within `activationTimeout`,
    /// `SwitchEvent.activationTimedOut` is emitted (roll back: remove the port).
    public func importPort(_ record: PortStateRecord, attachment: PortAttachment,
                           activationTimeout: Duration? = nil) async throws(VirtualSwitchError) {
        try await attach(record.configuration.id, attachment) { shell, now throws(SwitchError) in
            try shell.core.importPort(record, activationDeadline: activationTimeout.map { now + $0 }, now: now)
            return []
        }
    }

    private func attach(_ id: PortID, _ attachment: PortAttachment,
                        create: @escaping @Sendable (SwitchShellState, MeshInstant) throws(SwitchError) -> [SwitchDirective]) async throws(VirtualSwitchError) {
        let vmAddress: SocketAddress
        do {
            vmAddress = try SocketAddress(unixDomainSocketPath: attachment.vmSocketPath)
        } catch {
            throw .socketPathTooLong(path: attachment.vmSocketPath)
        }
        try await onLoopAsync { shell throws(VirtualSwitchError) -> EventLoopFuture<Void> in
            guard shell.phase != .stopped else { throw .stopped }
            guard shell.core.status(of: id) == nil else { throw .switch(.portExists(id)) }
            let socket = try DatagramSocket.bindUnix(path: attachment.switchSocketPath, bufferBytes: self.configuration.socketBufferBytes)
            let directives: [SwitchDirective]
            do throws(SwitchError) {
                directives = try create(shell, self.now())
            } catch {
                socket.closeUnadopted() // NIO has not adopted it yet: both descriptors are ours
                throw .switch(error)
            }
            let serial = shell.nextBindingSerial()
            shell.ports[id] = SwitchShellState.PortBinding(serial: serial, socket: socket, channel: nil, vmAddress: vmAddress, attachment: attachment)
            self.execute(directives, shell)
            self.logger.debug("port created", metadata: ["vswitch.port": "\(id)", "vswitch.socket": "\(attachment.switchSocketPath)",
                                                         "vswitch.state": "\(shell.core.status(of: id)?.lifecycle.description ?? "?")"])
            return self.listen(id, socket, serial: serial)
        }
    }

    /// Starts reading a port's socket. If SwiftNIO closes the channel underneath us (it does on
    /// a datagram from an unnamed sender), the socket is bound again: a stray local sender
    /// must not be able to cut a VM off.
    private func listen(_ id: PortID, _ socket: DatagramSocket, serial: UInt64) -> EventLoopFuture<Void> {
        adopt(socket, what: "port socket \(socket.unixPath ?? "?")", vectorReads: false) { frame in
            self.onPortDatagram(id, frame)
        } onClose: {
            self.portSocketClosed(id, serial: serial)
        }.map { channel in
            let shell = self.runtime.state
            guard shell.ports[id]?.serial == serial else {
                channel.close(promise: nil) // removed meanwhile
                return
            }
            shell.ports[id]?.channel = channel
        }
    }

    /// A port's channel closed. On the loop.
    private func portSocketClosed(_ id: PortID, serial: UInt64) {
        let shell = runtime.state
        guard shell.phase != .stopped, let binding = shell.ports[id], binding.serial == serial else { return }
        binding.socket.close()
        shell.rebinds &+= 1
        do {
            let socket = try DatagramSocket.bindUnix(path: binding.attachment.switchSocketPath, bufferBytes: configuration.socketBufferBytes)
            let serial = shell.nextBindingSerial()
            shell.ports[id] = SwitchShellState.PortBinding(serial: serial, socket: socket, channel: nil, vmAddress: binding.vmAddress,
                                                     attachment: binding.attachment)
            logger.debug("port socket closed unexpectedly, bound again", metadata: ["vswitch.port": "\(id)"])
            listen(id, socket, serial: serial).whenFailure { error in
                self.logger.debug("port socket could not be read again", metadata: ["vswitch.port": "\(id)", "error": "\(error)"])
            }
        } catch {
            shell.ports[id] = nil
            // The VM has lost its network until the port is created again: an operator must see it.
            logger.error("port socket closed unexpectedly and could not be bound again; the VM is cut off until its port is created again",
                         metadata: ["vswitch.port": "\(id)", "error": "\(error)"])
        }
    }

    /// Removes a port and closes its socket. An active port withdraws its location.
    public func removePort(_ id: PortID) async throws(VirtualSwitchError) {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            let directives: [SwitchDirective]
            do throws(SwitchError) { directives = try shell.core.removePort(id, now: self.now()) } catch { throw .switch(error) }
            self.execute(directives, shell)
            self.closeSocket(of: id, shell)
        }
    }

    /// Destination, once the VM resumed: a blocked port not activated within `timeout` emits
    /// `SwitchEvent.activationTimedOut`.
    public func armActivation(_ id: PortID, timeout: Duration) async throws(VirtualSwitchError) {
        try await coreCall { shell, now throws(SwitchError) in try shell.core.armActivation(id, deadline: now + timeout) }
    }

    /// Activates a blocked port now (normally automatic on the VM's announcement).
    public func activatePort(_ id: PortID) async throws(VirtualSwitchError) {
        try await coreCall { shell, now throws(SwitchError) in
            let directives = try shell.core.activatePort(id, now: now)
            shell.ports[id]?.tracingFrames = true
            shell.ports[id]?.framesAfterActivation = []
            return directives
        }
    }

    /// When the last frame from the VM reached its port (wall clock, seconds since the Unix
    /// epoch); nil if none came or frames are not held during moves.
    public func lastFrameFromVM(_ id: PortID) async -> Double? {
        // Fails only once the switch stopped, which removed every port: nothing to report.
        (try? await runtime.onLoop { shell in shell.ports[id]?.lastFrameFromVM }) ?? nil
    }

    /// The first frames from the VM after `activatePort` (at most 64): when (wall clock, seconds
    /// since the Unix epoch) and their `FrameKind`; empty before one came, or without an
    /// explicit activation.
    public func framesAfterActivation(_ id: PortID) async -> [(at: Double, kind: String)] {
        // Fails only once the switch stopped, which removed every port: nothing to report.
        (try? await runtime.onLoop { shell in shell.ports[id]?.framesAfterActivation ?? [] }) ?? []
    }

    /// The VM's QEMU reads its socket again (the guest resumed): frames held back for it are
    /// sent now, not at the next drain, which the backoff for a VM that read nothing may have put
    /// tens of milliseconds away.
    public func guestRunning(_ id: PortID) async {
        // Fails only once the switch stopped, which removed every port: nothing to send.
        try? await runtime.onLoop { shell in
            guard shell.ports[id] != nil else { return }
            shell.ports[id]?.fruitlessDrains = 0
            self.drain(id)
        }
    }

    /// Source, during pre-copy: the port's whole state (send it to the destination, which
    /// calls `importPort`).
    public func exportPortState(_ id: PortID) async throws(VirtualSwitchError) -> PortStateRecord {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            do throws(SwitchError) { return try shell.core.exportPortState(id, now: self.now()) } catch { throw .switch(error) }
        }
    }

    /// Source: changes since the last export (or since `base`); the destination applies it
    /// with `applyPortDelta`.
    public func exportPortDelta(_ id: PortID, since base: UInt64? = nil) async throws(VirtualSwitchError) -> PortStateDelta {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            do throws(SwitchError) { return try shell.core.exportPortDelta(id, since: base, now: self.now()) } catch { throw .switch(error) }
        }
    }

    /// Destination: applies a delta from the source.
    public func applyPortDelta(_ delta: PortStateDelta) async throws(VirtualSwitchError) {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            do throws(SwitchError) { try shell.core.applyPortDelta(delta, now: self.now()) } catch { throw .switch(error) }
        }
    }

    /// Source, at switchover: freezes the port and returns the final delta. Frames for the VM
    /// from then on are held (with those its socket had not taken yet) until `forwardStragglers`
    /// sends them to the new host or `unfreezePort` delivers them here.
    /// With `destination`, they go there at once instead (its blocked port holds them), and with
    /// `guestStoppedAt` (QEMU's STOP timestamp, seconds since the Unix epoch) so do copies of the
    /// frames handed to the VM's socket since then, first: the stopped QEMU never gives them to
    /// the guest, and if the move rolls back it still has the originals (Protocol.md §8.6.1).
    public func freezePort(_ id: PortID, destination: HostID? = nil, guestStoppedAt: Double? = nil) async throws(VirtualSwitchError) -> PortStateDelta {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            do throws(SwitchError) {
                let now = self.now()
                let unread = destination == nil ? [] : guestStoppedAt.map { self.takeSent(to: id, since: $0, shell) } ?? []
                shell.core.counters.heldFramesCopied &+= UInt64(unread.count)
                self.execute(try shell.core.pausePort(id, undelivered: unread + self.takeBacklog(of: id, shell), now: now), shell)
                let final = try shell.core.freezePort(id, destination: destination, now: now)
                self.execute(shell.core.takeDirectives(), shell)
                return final
            } catch { throw .switch(error) }
        }
    }

    /// Source, the guest just paused for the switchover (QEMU's STOP): frames for it are held
    /// from now on, not sent to a socket QEMU no longer reads (Protocol.md §8.6.1). Ends with
    /// `freezePort`, `resumePort`, or by itself after `SwitchSettings.heldFramesMaxAge`.
    public func pausePort(_ id: PortID) async throws(VirtualSwitchError) {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            let directives: [SwitchDirective]
            do throws(SwitchError) {
                directives = try shell.core.pausePort(id, undelivered: self.takeBacklog(of: id, shell), now: self.now())
            } catch { throw .switch(error) }
            self.execute(directives, shell)
        }
    }

    /// The paused guest runs here again: the held frames are delivered, in order.
    public func resumePort(_ id: PortID) async throws(VirtualSwitchError) {
        try await coreCall { shell, now throws(SwitchError) in try shell.core.resumePort(id, now: now) }
    }

    /// Frames held for a port, and their bytes.
    public func heldFrames(of id: PortID) async -> (frames: Int, bytes: Int)? {
        // Fails only once the switch stopped, which removed every port.
        try? await runtime.onLoop { shell in shell.core.heldFrames(of: id) }
    }

    /// Source, when the migration rolls back before switchover: the frozen port forwards again.
    public func unfreezePort(_ id: PortID) async throws(VirtualSwitchError) {
        try await coreCall { shell, now throws(SwitchError) in try shell.core.unfreezePort(id, now: now) }
    }

    /// Source, after switchover: forwards frames still arriving for the VM to `host` for
    /// `grace` (default `SwitchSettings.defaultStragglerGrace`), then removes the port and
    /// closes its socket (`SwitchEvent.portRemoved`).
    public func forwardStragglers(_ id: PortID, to host: HostID, grace: Duration? = nil) async throws(VirtualSwitchError) {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            let directives: [SwitchDirective]
            do throws(SwitchError) { directives = try shell.core.forwardStragglers(id, to: host, grace: grace, now: self.now()) } catch { throw .switch(error) }
            self.execute(directives, shell)  // the frames held meanwhile, to the new host first
            // The VM is gone: its socket is not needed to forward frames *for* it.
            self.closeSocket(of: id, shell)
        }
    }

    /// Replaces a port's security policy.
    public func updatePolicy(_ id: PortID, policy: SecurityPolicy) async throws(VirtualSwitchError) {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            do throws(SwitchError) { try shell.core.updatePolicy(id, policy: policy) } catch { throw .switch(error) }
        }
    }

    /// A port's configuration, lifecycle state and counters.
    public func portStatus(_ id: PortID) async -> PortStatus? {
        // Fails only once the switch stopped, which removed every port: nil is the truth.
        try? await runtime.onLoop { shell in shell.core.status(of: id) }
    }

    /// A port's counters.
    public func counters(of id: PortID) async -> PortCounters? {
        // Fails only once the switch stopped, which removed every port.
        try? await runtime.onLoop { shell in shell.core.counters(of: id) }
    }

    /// Switch-wide and overlay counters.
    public func counters() async -> (switch: SwitchCounters, overlay: OverlayCounters) {
        // Fails only once the switch stopped (its loop is gone): nothing more to count.
        (try? await runtime.onLoop { shell in (shell.core.counters, shell.overlay.counters) }) ?? (SwitchCounters(), OverlayCounters())
    }

    /// How many times a port socket closed underneath the switch and was bound again.
    public func portSocketRebinds() async -> UInt64 {
        // Fails only once the switch stopped (its loop is gone).
        (try? await runtime.onLoop { shell in shell.rebinds }) ?? 0
    }

    /// A port's drain timer: how often it fired since the port was bound, and how many drains
    /// in a row sent nothing (the backoff). For tests; nil if there is no such port.
    func drainTimer(of id: PortID) async -> (firings: UInt64, fruitless: Int)? {
        // Fails only once the switch stopped, which removed every port.
        try? await runtime.onLoop { shell in shell.ports[id].map { ($0.drainFirings, $0.fruitlessDrains) } }
    }

    // MARK: helpers

    private func coreCall(_ body: @escaping @Sendable (SwitchShellState, MeshInstant) throws(SwitchError) -> [SwitchDirective]) async throws(VirtualSwitchError) {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            let directives: [SwitchDirective]
            do throws(SwitchError) { directives = try body(shell, self.now()) } catch { throw .switch(error) }
            self.execute(directives, shell)
        }
    }

    /// The frames the VM's socket has not taken yet (EAGAIN), in order; the backlog is empty
    /// afterwards. Only when the core holds frames for the port now, so they are not lost.
    func takeBacklog(of id: PortID, _ shell: SwitchShellState) -> [ByteBuffer] {
        guard shell.core.settings.holdFramesDuringMoves, var binding = shell.ports[id], binding.backlogHead < binding.backlog.count else { return [] }
        let frames = Array(binding.backlog[binding.backlogHead...])
        binding.backlog = []
        binding.backlogHead = 0
        binding.heldInBacklog = 0
        shell.ports[id] = binding
        return frames
    }

    /// The frames handed to the VM's socket at or after `stoppedAt` (wall clock), in order; the
    /// port forgets every sent frame.
    func takeSent(to id: PortID, since stoppedAt: Double, _ shell: SwitchShellState) -> [ByteBuffer] {
        guard shell.core.settings.holdFramesDuringMoves, var binding = shell.ports[id] else { return [] }
        let sent = binding.recentlySent
        let unread = unreadCount(sent, queued: binding.socket.unreadSentBytes() ?? 0, port: id, shell)
        // Handed over after the STOP (the guest never saw them), or still in QEMU's socket
        // (handed over before the STOP while QEMU was not reading: under load, or while the
        // migration's last pass held QEMU's main loop).
        let copied = sent.indices.filter { sent[$0].at >= stoppedAt || $0 >= sent.count - unread }
        shell.core.counters.heldFramesCopiedUnread &+= UInt64(copied.filter { sent[$0].at < stoppedAt }.count)
        binding.recentlySent = []
        shell.ports[id] = binding
        return copied.map { sent[$0].frame }
    }

    /// How many of the newest frames in `sent` the VM's socket still holds: the kernel charges
    /// unread datagrams to our socket (`queued` bytes), FIFO, so they are the newest ones whose
    /// kernel sizes add up to it.
    private func unreadCount(_ sent: [SwitchShellState.SentFrame], queued: Int, port: PortID, _ shell: SwitchShellState) -> Int {
        var sum = 0, count = 0
        for frame in sent.reversed() {
            guard sum < queued, let size = shell.kernelSizes.of(length: frame.frame.readableBytes), sum + size <= queued else { break }
            sum += size
            count += 1
        }
        if sum != queued {
            logger.debug("the unread frames in a VM's socket do not add up to its queue",
                         metadata: ["vswitch.port": "\(port)", "queued": "\(queued)", "matched": "\(sum)"])
        }
        return count
    }

    func closeSocket(of id: PortID, _ shell: SwitchShellState) {
        guard let binding = shell.ports.removeValue(forKey: id) else { return }
        binding.channel?.close(promise: nil)
        binding.socket.close()
    }
}

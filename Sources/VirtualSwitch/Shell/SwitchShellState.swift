import NIOCore
import ShellSupport

/// Everything the switch's shell mutates, confined to its event loop (held in a
/// `LoopBoundShell`, so every access is checked to be on that loop).
final class SwitchShellState {
    /// A port's socket: where the switch reads the VM's frames and where it sends them.
    struct PortBinding {
        /// Distinguishes this binding from earlier ones of the same port.
        var serial: UInt64
        var socket: DatagramSocket
        var channel: (any Channel)?
        /// The VM's socket (QEMU's `local.path`).
        var vmAddress: SocketAddress
        var attachment: PortAttachment
        /// Frames the VM's socket refused with EAGAIN (its queue holds only
        /// `net.unix.max_dgram_qlen` datagrams, 10 by default), sent again shortly, in order.
        var backlog: [ByteBuffer] = []
        var backlogHead = 0
        /// Of the backlog's frames not sent yet, how many at its front were released from the
        /// port's hold (§8.6.1): they do not count against `VirtualSwitch.maxBacklog`.
        var heldInBacklog = 0
        var drainScheduled = false
        /// Drains in a row that sent nothing (the VM is paused: switchover, an in-doubt hold);
        /// each one doubles the wait before the next (`VirtualSwitch.drainDelay`).
        var fruitlessDrains = 0
        /// Drain timer firings since the port was bound (tests count them).
        var drainFirings: UInt64 = 0
        /// The last frames handed to the VM's socket, with when (wall clock, seconds since the
        /// Unix epoch, QEMU's clock for its events), kept while frames are held during moves:
        /// those handed over after QEMU stopped the guest are still in QEMU's socket or queue, and
        /// the freeze sends copies on to the destination (`VirtualSwitch.freezePort`).
        var recentlySent: [SentFrame] = []
        /// Set by an explicit activation (the destination, just before the guest resumes):
        /// the next `tracedFramesKept` frames from the VM note their time and kind in
        /// `framesAfterActivation`.
        var tracingFrames = false
        /// The first frames from the VM after the explicit activation: when (wall clock, seconds
        /// since the Unix epoch) and what (`FrameKind`), for the switchover's timeline.
        var framesAfterActivation: [(at: Double, kind: String)] = []
        /// When the last frame from the VM came (wall clock, seconds since the Unix epoch), noted
        /// while frames are held during moves: the switchover timeline's last sign of the guest
        /// before QEMU stopped it.
        var lastFrameFromVM: Double?
    }

    /// How many frames from a VM after its activation the timeline notes.
    static let tracedFramesKept = 64

    /// A frame handed to a VM's socket, and when.
    struct SentFrame {
        var frame: ByteBuffer
        var at: Double
    }

    /// How many sent frames a port remembers: more than a stopped QEMU can still hold (its
    /// socket queue, `net.unix.max_dgram_qlen`, 10 datagrams by default, and the one frame its
    /// net layer queues when the guest cannot take it); the rest wait in the switch's backlog.
    static let recentlySentKept = 64

    var core: SwitchCore
    var overlay: OverlayEndpoint
    var ports: [PortID: PortBinding] = [:]
    var overlaySocket: DatagramSocket?
    var overlayChannel: (any Channel)?
    var tick: RepeatedTask?
    var phase = ShellPhase.idle
    /// Port sockets bound again after SwiftNIO closed them.
    var rebinds: UInt64 = 0
    /// Replaces handing the overlay socket to NIO in `start()`; nil (always, outside tests)
    /// means `VirtualSwitch.adopt`. Tests set it to make a start fail after the bind.
    var adoptOverlay: ((DatagramSocket) -> EventLoopFuture<any Channel>)?
    /// Last `PortBinding.serial` handed out.
    var lastBindingSerial: UInt64 = 0

    func nextBindingSerial() -> UInt64 {
        lastBindingSerial += 1
        return lastBindingSerial
    }
    let allocator = ByteBufferAllocator()
    /// Kernel sizes of unread datagrams, to find the frames a stopped QEMU's socket still holds.
    let kernelSizes = DatagramKernelSize()

    init(core: SwitchCore, overlay: OverlayEndpoint) {
        self.core = core
        self.overlay = overlay
    }
}

/// Where a VM NIC's frames meet the switch: QEMU's `-netdev dgram` with unix sockets.
///
/// QEMU binds `vmSocketPath` (`local.path`) and sends each frame to `switchSocketPath`
/// (`remote.path`); the switch binds `switchSocketPath` and sends frames for the VM to
/// `vmSocketPath`. The switch must bind before QEMU starts (QEMU drops frames it cannot send).
public struct PortAttachment: Hashable, Sendable {
    /// The switch's socket (QEMU's `remote.path`).
    public var switchSocketPath: String
    /// The VM's socket (QEMU's `local.path`).
    public var vmSocketPath: String

    /// An attachment; pass the paths of `VMSpec.NIC.Attachment.dgram(localPath:remotePath:)`
    /// as `vmSocketPath: localPath, switchSocketPath: remotePath`.
    public init(switchSocketPath: String, vmSocketPath: String) {
        self.switchSocketPath = switchSocketPath
        self.vmSocketPath = vmSocketPath
    }
}

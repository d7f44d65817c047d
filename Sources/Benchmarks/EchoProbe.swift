import NIOCore
import VirtualSwitch

/// A synthetic NIC for measurements: it sits on a switch port like a QEMU NIC (a unix datagram
/// socket), resolves a guest's MAC with ARP, then keeps `window` ICMP echo requests of
/// `payloadBytes` in flight to the guest for `duration`, and records every reply. The guest's
/// kernel does the echoing, so the figures include the guest.
///
/// Not Sendable: a channel handler, used only on its channel's event loop.
final class EchoProbe: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    struct Settings {
        var mac: MACAddress
        var ip: IPAddress
        var target: IPAddress
        var switchAddress: SocketAddress
        var payloadBytes: Int
        var window: Int
        var duration: TimeAmount
        var resolveTimeout: TimeAmount
        var identifier: UInt16
        var senderPath: String
    }

    private let settings: Settings
    private let done: EventLoopPromise<EchoProbeResult>
    /// Frames go out through a socket of our own: NIO cannot batch writes on unix datagram
    /// sockets (its vector write path traps).
    private let sender: ProbeSender
    private var targetMAC: MACAddress?
    private var outstanding: [UInt16: NIODeadline] = [:]
    private var nextSequence: UInt16 = 1
    private var startedAt: NIODeadline?
    private var result = EchoProbeResult()
    private var timer: RepeatedTask?
    private var resolveStarted = NIODeadline.now()
    private var finished = false

    init(settings: Settings, done: EventLoopPromise<EchoProbeResult>) throws {
        self.settings = settings
        self.done = done
        // A named sender: the switch (like SwiftNIO) wants to know who sent a datagram.
        sender = try ProbeSender(path: settings.senderPath)
    }

    private func send(_ frame: ByteBuffer) {
        if !sender.send(frame, to: settings.switchAddress) { result.sendFailures += 1 }
    }

    func channelActive(context: ChannelHandlerContext) {
        resolveStarted = .now()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(20)) { _ in
            let (probe, context) = loopBound.value
            probe.onTimer(context: context)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data).data
        guard let header = EthernetHeader(frame), header.destination == settings.mac || header.destination.isBroadcast else { return }
        if header.etherType == EtherType.arp, targetMAC == nil, let arp = ARPPacket(frame: frame),
           arp.operation == ARPPacket.reply, arp.senderIP == settings.target {
            targetMAC = arp.senderMAC
            startedAt = .now()
            for _ in 0..<settings.window { sendRequest(context: context) }
            return
        }
        guard header.etherType == EtherType.ipv4, let packet = IPPacketInfo(frame: frame, etherType: EtherType.ipv4),
              packet.source == settings.target, case let .queryReply(identifier) = packet.icmp, identifier == settings.identifier,
              let sequence = frame.getInteger(at: frame.readerIndex + 14 + 20 + 6, as: UInt16.self),
              let sentAt = outstanding.removeValue(forKey: sequence)
        else { return }
        let now = NIODeadline.now()
        result.replies += 1
        result.bytes += 2 * frame.readableBytes
        result.rttNanoseconds.append(UInt64(max(0, (now - sentAt).nanoseconds)))
        if let startedAt, now - startedAt < settings.duration {
            sendRequest(context: context)
        }
    }

    private func onTimer(context: ChannelHandlerContext) {
        guard !finished else { return }
        let now = NIODeadline.now()
        guard let startedAt else {
            if now - resolveStarted > settings.resolveTimeout {
                finish(error: EchoProbeError.targetUnreachable(settings.target))
            } else {
                let request = ARPPacket(operation: ARPPacket.request, senderMAC: settings.mac, senderIP: settings.ip, targetMAC: .zero,
                                        targetIP: settings.target)
                send(request.frame(destination: .broadcast, source: settings.mac, allocator: context.channel.allocator))
            }
            return
        }
        // A request unanswered for a second is lost; keep the window full while running.
        let running = now - startedAt < settings.duration
        for (sequence, sentAt) in outstanding where now - sentAt > .seconds(1) {
            outstanding[sequence] = nil
            result.lost += 1
            if running { sendRequest(context: context) }
        }
        if !running, outstanding.isEmpty || now - startedAt > settings.duration + .seconds(1) {
            result.elapsedNanoseconds = UInt64((min(now, startedAt + settings.duration) - startedAt).nanoseconds)
            result.lost += outstanding.count
            finish(error: nil)
        }
    }

    private func finish(error: (any Error)?) {
        finished = true
        timer?.cancel()
        sender.close()
        if let error { done.fail(error) } else { done.succeed(result) }
    }

    private func sendRequest(context: ChannelHandlerContext) {
        guard let targetMAC else { return }
        let sequence = nextSequence
        nextSequence &+= 1
        if nextSequence == 0 { nextSequence = 1 }
        outstanding[sequence] = .now()
        result.requests += 1
        let frame = Self.echoRequest(from: settings.mac, to: targetMAC, source: settings.ip, destination: settings.target,
                                     identifier: settings.identifier, sequence: sequence, payloadBytes: settings.payloadBytes,
                                     allocator: context.channel.allocator)
        send(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished { finish(error: EchoProbeError.socketClosed) }
        context.fireChannelInactive()
    }

    /// An Ethernet/IPv4/ICMP echo request with valid checksums.
    static func echoRequest(from source: MACAddress, to destination: MACAddress, source ip: IPAddress, destination target: IPAddress,
                            identifier: UInt16, sequence: UInt16, payloadBytes: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var icmp: [UInt8] = [8, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xFF), UInt8(sequence >> 8), UInt8(sequence & 0xFF)]
        icmp += (0..<payloadBytes).map { UInt8(truncatingIfNeeded: $0) }
        let icmpSum = checksum(icmp)
        icmp[2] = UInt8(icmpSum >> 8)
        icmp[3] = UInt8(icmpSum & 0xFF)
        let total = 20 + icmp.count
        var ipHeader: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), UInt8(sequence >> 8), UInt8(sequence & 0xFF),
                                 0x40, 0, 64, IPProtocol.icmp, 0, 0] + ip.bytes + target.bytes
        let ipSum = checksum(ipHeader)
        ipHeader[10] = UInt8(ipSum >> 8)
        ipHeader[11] = UInt8(ipSum & 0xFF)
        var buffer = allocator.buffer(capacity: 14 + total)
        EthernetHeader.write(destination: destination, source: source, etherType: EtherType.ipv4, to: &buffer)
        buffer.writeBytes(ipHeader)
        buffer.writeBytes(icmp)
        return buffer
    }

    /// The Internet checksum (RFC 1071).
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }
}

@available(*, unavailable)
extension EchoProbe: Sendable {}

/// What one probe run measured.
struct EchoProbeResult: Sendable {
    var requests = 0
    var replies = 0
    var lost = 0
    /// Requests the probe could not send (the switch's socket was full).
    var sendFailures = 0
    /// Bytes of requests and replies whose reply arrived (Ethernet frames).
    var bytes = 0
    var elapsedNanoseconds: UInt64 = 0
    var rttNanoseconds: [UInt64] = []
}

/// Why a probe run failed.
enum EchoProbeError: Error, CustomStringConvertible {
    case targetUnreachable(IPAddress)
    case socketClosed

    var description: String {
        switch self {
        case let .targetUnreachable(ip): return "no ARP answer for \(ip): the guest did not come up on the switch"
        case .socketClosed: return "the probe's socket closed"
        }
    }
}

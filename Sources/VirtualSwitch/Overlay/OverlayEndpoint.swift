import MeshCrypto
public import NIOCore

/// The overlay's datagram layer for one host, as a pure value: per-peer keys, send counters and
/// replay windows; seals frames and control messages for a peer and opens what arrives
/// (Protocol.md §8.2-8.3). No sockets: the shell sends what `seal` returns to the address it
/// returns, and hands every received datagram to `open`.
public struct OverlayEndpoint: Sendable {
    /// This host.
    public let localHost: HostID
    /// This host's tag in headers.
    public let localTag: UInt64
    /// Counters.
    public private(set) var counters = OverlayCounters()

    struct Peer: Sendable {
        var address: SocketAddress
        var current: OverlayKeys
        var previous: OverlayKeys?
        /// Last counter used to seal; never reset while this endpoint lives, so a nonce is
        /// never reused even if the same key material were installed twice.
        var sendCounter: UInt64 = 0
        var currentWindow = ReplayWindow(width: OverlayEndpoint.replayWindowWidth)
        var previousWindow = ReplayWindow(width: OverlayEndpoint.replayWindowWidth)
        /// A host of another domain carrying stretched segments (Protocol.md §8.9); nil: a host
        /// of this domain.
        var link: StretchedLink?
        /// The tag this host puts in headers to this peer.
        var senderTag: UInt64
    }

    /// Counters each key's replay window remembers (Protocol.md §8.3).
    static let replayWindowWidth: UInt64 = 2048

    private var peers: [HostID: Peer] = [:]
    private var hostsByTag: [UInt64: HostID] = [:]

    /// An endpoint with no peers.
    public init(localHost: HostID) {
        self.localHost = localHost
        localTag = OverlayKeys.hostTag(localHost)
    }

    /// The configured peers, sorted.
    public var peerHosts: [HostID] { peers.keys.sorted() }

    /// A peer's overlay address.
    public func address(of host: HostID) -> SocketAddress? { peers[host]?.address }

    /// The stretched link of a peer of another domain (nil: a peer of this domain, or none).
    public func link(of host: HostID) -> StretchedLink? { peers[host]?.link }

    /// Adds a peer or updates its address and keys. New keys (another `keyID`) become current and
    /// the old ones stay accepted for receiving until `retirePreviousKeys` or the next rekey.
    /// Every new `OverlayKeys` MUST be fresh key material (from a fresh channel export).
    ///
    /// `link` makes the peer a host of another domain (Protocol.md §8.9): this host then names
    /// itself `link.localName` in headers to it, and only `link`'s segments cross, translated.
    ///
    /// - Throws: `OverlayError.tagCollision` if the peer's tag equals another host's.
    public mutating func setPeer(_ host: HostID, address: SocketAddress, keys: OverlayKeys, link: StretchedLink? = nil) throws(OverlayError) {
        let tag = OverlayKeys.hostTag(host)
        if tag == localTag || (hostsByTag[tag].map { $0 != host } ?? false) {
            throw .tagCollision(host, with: tag == localTag ? localHost : hostsByTag[tag]!)
        }
        let senderTag = link.map { OverlayKeys.hostTag($0.localName) } ?? localTag
        guard var peer = peers[host] else {
            peers[host] = Peer(address: address, current: keys, link: link, senderTag: senderTag)
            hostsByTag[tag] = host
            return
        }
        peer.address = address
        peer.link = link
        peer.senderTag = senderTag
        if keys.receive !== peer.current.receive || keys.send !== peer.current.send {
            if keys.keyID != peer.current.keyID {
                peer.previous = peer.current
                peer.previousWindow = peer.currentWindow
            }
            peer.current = keys
            peer.currentWindow = ReplayWindow(width: Self.replayWindowWidth)
        }
        peers[host] = peer
    }

    /// Stops accepting the peer's previous keys (after a rekey's grace period).
    public mutating func retirePreviousKeys(_ host: HostID) {
        peers[host]?.previous = nil
    }

    /// Forgets a peer: its datagrams are dropped as from an unknown host.
    public mutating func removePeer(_ host: HostID) {
        guard peers.removeValue(forKey: host) != nil else { return }
        hostsByTag[OverlayKeys.hostTag(host)] = nil
    }

    /// Seals `payload` for `host`: header, then ciphertext and tag. Nil if `host` is not a peer
    /// (counted as `noPeer`).
    public mutating func seal(_ payload: ByteBuffer, kind: OverlayHeader.Kind, segment: UInt32, flags: UInt8 = 0, to host: HostID,
                              allocator: ByteBufferAllocator) -> (datagram: ByteBuffer, address: SocketAddress)? {
        guard var peer = peers[host], peer.sendCounter < .max else {
            counters.noPeer &+= 1
            return nil
        }
        var segment = segment
        if let link = peer.link, kind == .frame {
            // Across domains only the stretched segments go, under the peer's own segment id.
            guard let theirs = link.outbound(SegmentID(segment)) else {
                counters.notStretched &+= 1
                return nil
            }
            segment = theirs.rawValue
        }
        peer.sendCounter += 1
        let header = OverlayHeader(kind: kind, flags: flags, keyID: peer.current.keyID, segment: segment,
                                   senderTag: peer.senderTag, counter: peer.sendCounter)
        peers[host] = peer
        var datagram = allocator.buffer(capacity: OverlayHeader.length + payload.readableBytes + AEADAlgorithm.tagLength)
        header.write(to: &datagram)
        peer.current.send.seal(payload, counter: header.counter, aad: header.bytes, appendingTo: &datagram)
        counters.datagramsSent &+= 1
        counters.bytesSent &+= UInt64(datagram.readableBytes)
        return (datagram, peer.address)
    }

    /// Authenticates, decrypts and replay-checks one received datagram.
    public mutating func open(_ datagram: ByteBuffer, allocator: ByteBufferAllocator) -> OverlayReceived {
        let header: OverlayHeader
        do {
            header = try OverlayHeader(parsing: datagram)
        } catch {
            switch error {
            case .truncated, .unknownKind: return drop(.malformed)
            case .unknownVersion: return drop(.unknownVersion)
            }
        }
        guard let host = hostsByTag[header.senderTag], var peer = peers[host] else { return drop(.unknownHost) }
        let usesCurrent: Bool
        if header.keyID == peer.current.keyID {
            usesCurrent = true
        } else if let previous = peer.previous, header.keyID == previous.keyID {
            usesCurrent = false
        } else {
            return drop(.unknownKey)
        }
        let keys = usesCurrent ? peer.current : peer.previous!
        guard (usesCurrent ? peer.currentWindow : peer.previousWindow).check(header.counter) else { return drop(.replay) }
        let ciphertext = datagram.getSlice(at: datagram.readerIndex + OverlayHeader.length,
                                           length: datagram.readableBytes - OverlayHeader.length)!
        var plaintext = allocator.buffer(capacity: ciphertext.readableBytes)
        do {
            try keys.receive.open(ciphertext, counter: header.counter, aad: header.bytes, appendingTo: &plaintext)
        } catch {
            return drop(.badTag)
        }
        // Only an authenticated counter moves the window.
        _ = usesCurrent ? peer.currentWindow.accept(header.counter) : peer.previousWindow.accept(header.counter)
        peers[host] = peer
        counters.datagramsReceived &+= 1
        counters.bytesReceived &+= UInt64(datagram.readableBytes)
        switch header.kind {
        case .frame:
            guard SegmentID(header.segment).isValid else { return drop(.malformed) }
            let segment = SegmentID(header.segment)
            // A host of another domain sends frames under this host's segment id (it translated
            // them, §8.9), and only a stretched segment passes.
            if let link = peer.link, link.outbound(segment) == nil { return drop(.notStretched) }
            return .frame(from: host, segment: segment, frame: plaintext,
                          forwarded: header.flags & OverlayHeader.flagForwarded != 0,
                          flooded: header.flags & OverlayHeader.flagFlooded != 0)
        case .control:
            return .control(from: host, payload: Array(plaintext.readableBytesView))
        }
    }

    private mutating func drop(_ reason: OverlayDropReason) -> OverlayReceived {
        counters.drops[reason, default: 0] &+= 1
        return .dropped(reason)
    }
}

/// What `OverlayEndpoint.open` found in a datagram.
public enum OverlayReceived: Sendable {
    /// An Ethernet frame from `host` for `segment`.
    case frame(from: HostID, segment: SegmentID, frame: ByteBuffer, forwarded: Bool, flooded: Bool)
    /// A control message (`OverlayControlCodec.decode`) from `host`.
    case control(from: HostID, payload: [UInt8])
    /// Dropped, and counted.
    case dropped(OverlayDropReason)
}

/// Why the overlay dropped a datagram.
public enum OverlayDropReason: String, Hashable, Sendable, CaseIterable {
    /// Too short, or an unknown kind, or a frame for segment 0.
    case malformed
    /// A frame from a host of another domain on a segment the pair does not stretch (§8.9).
    case notStretched = "not-stretched"
    /// A header version other than 1.
    case unknownVersion = "unknown-version"
    /// The sender's tag is not a configured peer's.
    case unknownHost = "unknown-host"
    /// The key id is neither the peer's current nor its previous one.
    case unknownKey = "unknown-key"
    /// The AEAD tag did not verify (forged, corrupted, or the wrong key).
    case badTag = "bad-tag"
    /// The counter was seen before or is older than the replay window.
    case replay
}

/// Overlay datagram counters.
public struct OverlayCounters: Hashable, Sendable {
    /// Datagrams sealed for sending.
    public var datagramsSent: UInt64 = 0
    /// Bytes of sealed datagrams.
    public var bytesSent: UInt64 = 0
    /// Datagrams accepted.
    public var datagramsReceived: UInt64 = 0
    /// Bytes of accepted datagrams.
    public var bytesReceived: UInt64 = 0
    /// Sends to a host that is not a configured peer.
    public var noPeer: UInt64 = 0
    /// Frames not sent to a host of another domain: their segment is not stretched (§8.9).
    public var notStretched: UInt64 = 0
    /// Datagrams the shell could not send (socket errors).
    public var sendFailures: UInt64 = 0
    /// Dropped datagrams by reason.
    public var drops: [OverlayDropReason: UInt64] = [:]

    /// All zero.
    public init() {}

    /// Datagrams dropped for `reason`.
    public subscript(reason: OverlayDropReason) -> UInt64 { drops[reason, default: 0] }

    mutating func countSendFailure() { sendFailures &+= 1 }

    /// Every counter by a stable name (`overlay.datagrams-sent`, `overlay.drops.<reason>`, …).
    public var named: [String: UInt64] {
        var named: [String: UInt64] = [
            "overlay.datagrams-sent": datagramsSent, "overlay.datagrams-received": datagramsReceived,
            "overlay.no-peer": noPeer, "overlay.not-stretched": notStretched, "overlay.send-failures": sendFailures,
        ]
        for (reason, count) in drops { named["overlay.drops." + reason.rawValue] = count }
        return named
    }
}

/// An overlay configuration error.
public enum OverlayError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Two host ids hash to the same 64-bit tag (astronomically unlikely; rename a host).
    case tagCollision(HostID, with: HostID)

    public var description: String {
        switch self {
        case let .tagCollision(host, other):
            return "host ids \"\(host)\" and \"\(other)\" have the same overlay tag: give one of the hosts another id"
        }
    }
}

extension OverlayEndpoint {
    /// Counts a datagram the shell failed to send.
    public mutating func recordSendFailure() { counters.countSendFailure() }
}

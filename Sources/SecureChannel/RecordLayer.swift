import MeshCrypto
public import MeshTime
import MeshWire
public import NIOCore

/// What a record carries (Protocol.md §3.6). Authenticated as associated data, not encrypted.
public enum RecordContentType: UInt8, Sendable {
    /// Application bytes.
    case data = 0
    /// The sender switches to its next key after this record.
    case keyUpdate = 1
    /// The sender closes the channel; the content is a CloseReason.
    case close = 2
    /// The responder accepted the initiator (always its first record; empty).
    case accept = 3
    /// The sender's host rotated its key; the content is a ChannelReauth (Protocol.md §3.9).
    case reauthenticate = 4
    /// Bytes that mean nothing, authenticated and discarded: sent only to a peer that said it
    /// accepts them (Protocol.md §3.6), to warm a connection's window before it has data.
    case padding = 5
}

/// Seals outgoing records: one direction's key, counter and rekey budget. Pure.
public struct RecordSealer: Sendable {
    private var key: AEADKey
    private var rawKey: SecretBytes
    private(set) var counter: UInt64 = 0
    private var bytesSinceRekey: UInt64 = 0
    private var lastRekey: MeshInstant
    /// Rekey after this many sealed bytes.
    public let rekeyAfterBytes: UInt64
    /// Rekey after this much time on the shell's monotonic timeline.
    public let rekeyAfter: Duration
    /// Largest record payload the peer accepts.
    public let maxPayload: Int
    /// How many key updates this side has sent.
    public private(set) var keyUpdates = 0

    /// A sealer starting at counter 0 with `key` at monotonic time `now`.
    public init(session: ChannelSession, rekeyAfterBytes: UInt64, rekeyAfter: Duration, now: MeshInstant) {
        self.rawKey = session.sendKey
        self.key = try! AEADKey(session.aead, key: session.sendKey) // negotiated algorithms are available by construction
        self.rekeyAfterBytes = rekeyAfterBytes
        self.rekeyAfter = rekeyAfter
        self.maxPayload = session.peerMaxRecordPayload
        self.lastRekey = now
    }

    /// Seals `data` (split into records of at most `maxPayload`) and appends the frames to `out`.
    /// A key update record is inserted first when the byte or time budget is spent.
    public mutating func sealData(_ data: ByteBuffer, now: MeshInstant, into out: inout ByteBuffer) throws(SecureChannelError) {
        var remaining = data
        repeat {
            if bytesSinceRekey >= rekeyAfterBytes || now - lastRekey >= rekeyAfter {
                try seal(.keyUpdate, ByteBuffer(), into: &out)
                rekey(now: now)
            }
            let chunk = remaining.readSlice(length: min(remaining.readableBytes, maxPayload))!
            try seal(.data, chunk, into: &out)
            bytesSinceRekey &+= UInt64(chunk.readableBytes)
        } while remaining.readableBytes > 0
    }

    /// Seals the responder's Accept record.
    public mutating func sealAccept(into out: inout ByteBuffer) throws(SecureChannelError) {
        try seal(.accept, ByteBuffer(), into: &out)
    }

    /// Seals a Close record carrying `reason`.
    public mutating func sealClose(_ code: CloseCode, _ message: String, into out: inout ByteBuffer) throws(SecureChannelError) {
        var reason = Hostmesh_V1_CloseReason()
        reason.code = code.rawValue
        reason.message = message
        try seal(.close, ByteBuffer(bytes: HandshakeWire.encode(reason)), into: &out)
    }

    /// Seals a padding record of `length` zero bytes (at most `maxPayload`): the peer opens and
    /// discards it. Counts towards the key's byte and time budget like data, a key update first
    /// when it is spent.
    public mutating func sealPadding(length: Int, now: MeshInstant, into out: inout ByteBuffer) throws(SecureChannelError) {
        if bytesSinceRekey >= rekeyAfterBytes || now - lastRekey >= rekeyAfter {
            try seal(.keyUpdate, ByteBuffer(), into: &out)
            rekey(now: now)
        }
        var zeros = ByteBuffer()
        zeros.writeRepeatingByte(0, count: max(0, min(length, maxPayload)))
        try seal(.padding, zeros, into: &out)
        bytesSinceRekey &+= UInt64(zeros.readableBytes)
    }

    /// Seals a re-authentication record carrying an encoded `ChannelReauth` (Protocol.md §3.9).
    public mutating func sealReauthentication(_ content: [UInt8], into out: inout ByteBuffer) throws(SecureChannelError) {
        try seal(.reauthenticate, ByteBuffer(bytes: content), into: &out)
    }

    private mutating func seal(_ type: RecordContentType, _ payload: ByteBuffer, into out: inout ByteBuffer) throws(SecureChannelError) {
        guard counter < UInt64.max else { throw SecureChannelError(.internalError, "record counter exhausted; reconnect") }
        let length = UInt32(1 + 8 + 1 + payload.readableBytes + AEADAlgorithm.tagLength)
        let aad = RecordOpener.associatedData(length: length, counter: counter, type: type)
        out.reserveCapacity(minimumWritableBytes: 4 + Int(length))
        out.writeBytes(aad)
        key.seal(payload, counter: counter, aad: aad, appendingTo: &out)
        counter += 1
    }

    private mutating func rekey(now: MeshInstant) {
        rawKey = RecordOpener.nextKey(rawKey)
        key = try! AEADKey(key.algorithm, key: rawKey) // same algorithm and length as before
        bytesSinceRekey = 0
        lastRekey = now
        keyUpdates += 1
    }
}

/// Opens incoming records: the other direction's key and the next expected counter. Pure.
public struct RecordOpener: Sendable {
    /// What an opened record means for the shell.
    public enum Opened: Sendable {
        /// Application bytes, appended to the caller's buffer.
        case data
        /// The peer switched keys; nothing to deliver.
        case keyUpdated
        /// The peer closed the channel with this reason (code `.normal` for an orderly close).
        case closed(SecureChannelError)
        /// The responder accepted us.
        case accepted
        /// The peer re-authenticates with a new key: the encoded `ChannelReauth` to check.
        case reauthentication([UInt8])
        /// Padding: authenticated, nothing to deliver.
        case padding
    }

    private var key: AEADKey
    private var rawKey: SecretBytes
    private(set) var expectedCounter: UInt64 = 0
    /// How many key updates the peer has made.
    public private(set) var keyUpdates = 0

    /// An opener for the receive direction of `session`.
    public init(session: ChannelSession) {
        self.rawKey = session.receiveKey
        self.key = try! AEADKey(session.aead, key: session.receiveKey) // negotiated algorithms are available by construction
    }

    /// Opens one record frame. The plaintext of a data record is appended to `plaintext`.
    public mutating func open(_ frame: Frame, appendingTo plaintext: inout ByteBuffer) throws(SecureChannelError) -> Opened {
        guard frame.type == .record else {
            if frame.type == .reject { throw HandshakeWire.peerError(Array(frame.body.readableBytesView)) }
            throw SecureChannelError(.protocolViolation, "\(frame.type) frame after the handshake")
        }
        var body = frame.body
        guard body.readableBytes >= 8 + 1 + AEADAlgorithm.tagLength,
              let counter = body.readInteger(as: UInt64.self), let rawType = body.readInteger(as: UInt8.self) else {
            throw SecureChannelError(.protocolViolation, "record too short")
        }
        guard counter == expectedCounter else {
            let what = counter < expectedCounter ? "replayed or reordered" : "reordered, or records were dropped"
            throw SecureChannelError(.recordOutOfOrder, "record counter \(counter), expected \(expectedCounter): \(what)")
        }
        guard let type = RecordContentType(rawValue: rawType) else {
            throw SecureChannelError(.protocolViolation, "unknown record content type \(rawType)")
        }
        let aad = Self.associatedData(length: frame.lengthField, counter: counter, type: type)
        // Control records are small; they are opened on their own so that only application
        // bytes ever land in the caller's buffer.
        var control = ByteBuffer()
        do {
            if type == .data {
                try key.open(body, counter: counter, aad: aad, appendingTo: &plaintext)
            } else {
                try key.open(body, counter: counter, aad: aad, appendingTo: &control)
            }
        } catch {
            throw SecureChannelError(.recordAuthenticationFailed, "record \(counter) failed authentication: tampered in transit or not from the peer")
        }
        expectedCounter += 1
        switch type {
        case .data:
            return .data
        case .keyUpdate:
            rawKey = Self.nextKey(rawKey)
            key = try! AEADKey(key.algorithm, key: rawKey) // same algorithm and length as before
            keyUpdates += 1
            return .keyUpdated
        case .close:
            let error = HandshakeWire.peerError(Array(control.readableBytesView))
            return .closed(error)
        case .accept:
            return .accepted
        case .reauthenticate:
            return .reauthentication(Array(control.readableBytesView))
        case .padding:
            return .padding
        }
    }

    /// length:u32be || 0x10 || counter:u64be || content type: the record header, authenticated.
    static func associatedData(length: UInt32, counter: UInt64, type: RecordContentType) -> [UInt8] {
        var aad = [UInt8](); aad.reserveCapacity(14)
        withUnsafeBytes(of: length.bigEndian) { aad.append(contentsOf: $0) }
        aad.append(FrameType.record.rawValue)
        withUnsafeBytes(of: counter.bigEndian) { aad.append(contentsOf: $0) }
        aad.append(type.rawValue)
        return aad
    }

    /// k' = BLAKE2b-256(key = k, "hostmesh-rekey-v1").
    static func nextKey(_ key: SecretBytes) -> SecretBytes {
        SecretBytes(Blake2b.hash(Array("hostmesh-rekey-v1".utf8), key: key, outputLength: 32))
    }
}

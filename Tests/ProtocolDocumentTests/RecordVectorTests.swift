import MeshCrypto
import NIOCore
@testable import SecureChannel
import Testing

/// Protocol.md §14.3: two records (a data record, then a close record) and a padding record
/// under each bulk AEAD (§3.6). Checked against the code's record layer and against libsodium's AEADs.
@Suite struct RecordVectorTests {
    let vector: Vector
    init() throws { vector = try ProtocolDocument.load().vector("14.3 Records") }

    static let algorithms: [(AEADAlgorithm, String)] = [(.aes256gcm, "aes"), (.xchacha20poly1305, "xchacha")]

    func session(_ aead: AEADAlgorithm) throws -> ChannelSession {
        let key = SecretBytes(try vector.bytes("key"))
        let peer = PeerIdentity(hostID: "node-b", domain: "lab", certificate: try VectorInputs.responderCertificate(), purpose: "control")
        return ChannelSession(peer: peer, aead: aead, isInitiator: true, channelBinding: [], peerMaxRecordPayload: 262_144,
                              sendKey: key, receiveKey: key, exporterSecret: key)
    }

    @Test(arguments: algorithms) func theCodeSealsAndOpensTheDocumentedRecords(_ aead: AEADAlgorithm, _ name: String) throws {
        guard aead.isAvailable else { return } // AES-256-GCM needs AES-NI in libsodium 1.0.18
        var sealer = RecordSealer(session: try session(aead), rekeyAfterBytes: .max, rekeyAfter: .seconds(Int64.max), now: .origin)
        var out = ByteBuffer()
        try sealer.sealData(ByteBuffer(bytes: try vector.bytes("data")), now: .origin, into: &out)
        expectHex(Array(out.readableBytesView), vector, "\(name)_record0", by: "the code")
        out.clear()
        try sealer.sealClose(.shuttingDown, "bye", into: &out)
        expectHex(Array(out.readableBytesView), vector, "\(name)_record1", by: "the code")

        var opener = RecordOpener(session: try session(aead))
        let decoder = FrameDecoder(maxRecordPayload: 262_144)
        var wire = ByteBuffer(bytes: try vector.bytes("\(name)_record0") + vector.bytes("\(name)_record1"))
        var plaintext = ByteBuffer()
        guard let first = try decoder.next(from: &wire), let second = try decoder.next(from: &wire) else {
            Issue.record("the documented records are not two frames")
            return
        }
        guard case .data = try opener.open(first, appendingTo: &plaintext) else { Issue.record("record 0 is not data"); return }
        #expect(Array(plaintext.readableBytesView) == (try vector.bytes("data")))
        guard case .closed(let reason) = try opener.open(second, appendingTo: &plaintext) else { Issue.record("record 1 is not a close"); return }
        #expect(reason.code == .shuttingDown && reason.detail == "bye")

        // A padding record of 4 bytes from a fresh sender: opened, and nothing delivered.
        var padder = RecordSealer(session: try session(aead), rekeyAfterBytes: .max, rekeyAfter: .seconds(Int64.max), now: .origin)
        out.clear()
        try padder.sealPadding(length: 4, now: .origin, into: &out)
        expectHex(Array(out.readableBytesView), vector, "\(name)_padding0", by: "the code")
        var fresh = RecordOpener(session: try session(aead))
        var padding = ByteBuffer(bytes: try vector.bytes("\(name)_padding0"))
        var nothing = ByteBuffer()
        guard let frame = try decoder.next(from: &padding), case .padding = try fresh.open(frame, appendingTo: &nothing) else {
            Issue.record("the documented padding record does not open as padding")
            return
        }
        #expect(nothing.readableBytes == 0)
    }

    @Test(arguments: algorithms) func libsodiumSealsTheDocumentedRecords(_ aead: AEADAlgorithm, _ name: String) throws {
        let key = try vector.bytes("key")
        var closeReason = ProtobufWriter()
        closeReason.uint(1, 22)
        closeReason.string(2, "bye")
        expectHex(closeReason.bytes, vector, "close_reason", by: "the §13.2 field numbers")
        let records = [(UInt64(0), UInt8(0), try vector.bytes("data"), "record0"), (1, 2, closeReason.bytes, "record1"),
                       (0, 5, [0, 0, 0, 0], "padding0")]
        for (counter, type, plaintext, label) in records {
            let length = UInt32(1 + 8 + 1 + plaintext.count + 16)
            let header = ProtobufWriter.u32(length) + [0x10] + ProtobufWriter.u64(counter) + [type]
            let sealed = aead == .aes256gcm ? Libsodium.aes256gcm(key: key, counter: counter, aad: header, plaintext)
                                            : Libsodium.xchachaPoly(key: key, counter: counter, aad: header, plaintext)
            guard let sealed else { return } // no AES-NI on this machine
            expectHex(header + sealed, vector, "\(name)_\(label)", by: "libsodium")
        }
    }
}

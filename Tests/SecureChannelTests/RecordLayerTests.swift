import MeshCrypto
import MeshTime
import NIOCore
@testable import SecureChannel
import Testing

@Suite struct RecordLayerTests {
    let f = Fixtures()

    func pair() throws -> (RecordSealer, RecordOpener) {
        let (sa, sb) = try Fixtures.handshake(initiator: f.host("node-a"), responder: f.host("node-b"), now: f.now)
        return (RecordSealer(session: sa, rekeyAfterBytes: 1 << 30, rekeyAfter: .seconds(Int64.max), now: .origin), RecordOpener(session: sb))
    }

    func frames(_ buffer: ByteBuffer) throws -> [Frame] {
        var b = buffer
        var out: [Frame] = []
        while let frame = try FrameDecoder(maxRecordPayload: 1 << 20).next(from: &b) { out.append(frame) }
        return out
    }

    /// Opens a frame; returns the plaintext of a data record, nil for control records.
    func data(_ opener: inout RecordOpener, _ frame: Frame) throws -> [UInt8]? {
        var out = ByteBuffer()
        if case .data = try opener.open(frame, appendingTo: &out) { return Array(out.readableBytesView) }
        return nil
    }

    @Test func recordsRoundTripAndSplitAtThePeersLimit() throws {
        var (sealer, opener) = try pair()
        var out = ByteBuffer()
        let big = (0..<600_000).map { UInt8(truncatingIfNeeded: $0) }
        try sealer.sealData(ByteBuffer(bytes: big), now: .origin, into: &out)
        let fs = try frames(out)
        #expect(fs.count == 3) // 256 KiB records
        var got: [UInt8] = []
        for frame in fs { got += try data(&opener, frame) ?? [] }
        #expect(got == big)
    }

    @Test func tamperedRecordIsRejected() throws {
        var (sealer, opener) = try pair()
        var out = ByteBuffer()
        try sealer.sealData(ByteBuffer(bytes: Array("secret".utf8)), now: .origin, into: &out)
        var bytes = Array(out.readableBytesView)
        bytes[bytes.count - 20] ^= 0x40
        #expect(throws: SecureChannelError(.recordAuthenticationFailed, "record 0 failed authentication: tampered in transit or not from the peer")) {
            var sink = ByteBuffer()
            _ = try opener.open(Fixtures.frame(bytes), appendingTo: &sink)
        }
        // Flipping the content type in the header is caught too (it is associated data).
        var typeFlip = Array(out.readableBytesView)
        typeFlip[13] = RecordContentType.keyUpdate.rawValue
        #expect(throws: SecureChannelError.self) { var sink = ByteBuffer(); _ = try opener.open(Fixtures.frame(typeFlip), appendingTo: &sink) }
    }

    @Test func replayedAndReorderedRecordsAreRejected() throws {
        var (sealer, opener) = try pair()
        var out = ByteBuffer()
        for word in ["one", "two", "three"] { try sealer.sealData(ByteBuffer(bytes: Array(word.utf8)), now: .origin, into: &out) }
        let fs = try frames(out)
        #expect(try data(&opener, fs[0]) == Array("one".utf8))
        // Replay of record 0.
        do { _ = try data(&opener, fs[0]); Issue.record("replay accepted") } catch let e as SecureChannelError {
            #expect(e.code == .recordOutOfOrder && e.detail.contains("replayed"))
        }
        // Reorder: record 2 before record 1.
        var (sealer2, opener2) = try pair()
        var out2 = ByteBuffer()
        for word in ["one", "two", "three"] { try sealer2.sealData(ByteBuffer(bytes: Array(word.utf8)), now: .origin, into: &out2) }
        let fs2 = try frames(out2)
        _ = try data(&opener2, fs2[0])
        #expect(throws: SecureChannelError.self) { try data(&opener2, fs2[2]) }
        _ = sealer
    }

    @Test func paddingIsAuthenticatedCountedAndDiscarded() throws {
        var (sealer, opener) = try pair()
        var out = ByteBuffer()
        try sealer.sealData(ByteBuffer(bytes: Array("one".utf8)), now: .origin, into: &out)
        try sealer.sealPadding(length: 4096, now: .origin, into: &out)
        try sealer.sealData(ByteBuffer(bytes: Array("two".utf8)), now: .origin, into: &out)
        let fs = try frames(out)
        #expect(fs.count == 3 && fs[1].body.readableBytes == 8 + 1 + 4096 + 16)
        var delivered = ByteBuffer()
        var opened: [RecordOpener.Opened] = []
        for frame in fs { opened.append(try opener.open(frame, appendingTo: &delivered)) }
        #expect(String(buffer: delivered) == "onetwo") // the padding's bytes never reach the application
        guard case .padding = opened[1] else { Issue.record("padding opened as \(opened[1])"); return }
        // Its counter is the next one (a dropped padding record is a dropped record), and it is
        // authenticated like any other: a flipped byte fails it.
        var (sealer2, opener2) = try pair()
        var tampered = ByteBuffer()
        try sealer2.sealPadding(length: 100, now: .origin, into: &tampered)
        var bytes = Array(tampered.readableBytesView)
        bytes[bytes.count - 30] ^= 1
        #expect(throws: SecureChannelError.self) { var sink = ByteBuffer(); _ = try opener2.open(Fixtures.frame(bytes), appendingTo: &sink) }
        // Capped at the peer's record size.
        var big = ByteBuffer()
        try sealer2.sealPadding(length: 10 << 20, now: .origin, into: &big)
        #expect(try frames(big)[0].body.readableBytes == 8 + 1 + sealer2.maxPayload + 16)
    }

    @Test func rekeyByBytesAndTimeKeepsTheStreamIntact() throws {
        let (sa, sb) = try Fixtures.handshake(initiator: f.host("node-a"), responder: f.host("node-b"), now: f.now)
        var sealer = RecordSealer(session: sa, rekeyAfterBytes: 1000, rekeyAfter: .seconds(5), now: .origin)
        var opener = RecordOpener(session: sb)
        var out = ByteBuffer()
        var sent: [UInt8] = []
        for i in 0..<20 {
            let chunk = [UInt8](repeating: UInt8(i), count: 300)
            sent += chunk
            try sealer.sealData(ByteBuffer(bytes: chunk), now: MeshInstant(sinceOrigin: .seconds(i)), into: &out)
        }
        var got: [UInt8] = []
        for frame in try frames(out) { got += try data(&opener, frame) ?? [] }
        #expect(got == sent)
        #expect(sealer.keyUpdates == 4 && opener.keyUpdates == sealer.keyUpdates) // every 4 chunks of 300 bytes
        // Time alone also triggers a rekey.
        var timed = RecordSealer(session: sa, rekeyAfterBytes: .max, rekeyAfter: .nanoseconds(10), now: .origin)
        var o2 = ByteBuffer()
        try timed.sealData(ByteBuffer(bytes: [1]), now: MeshInstant(nanosecondsSinceOrigin: 100), into: &o2)
        #expect(timed.keyUpdates == 1)
    }
}

import MeshWire
import NIOCore
import SecureChannel

/// The first envelope of a migration or NBD stream's channel (Protocol.md §6.3), naming the
/// migration, the stream and, for a stripe (§6.14), its index and the stripe count.
enum StreamHello {
    static func frame(migrationID: String, streamIndex: Int, stripe: (index: Int, count: Int)? = nil) -> ByteBuffer {
        var hello = Hostmesh_V1_AgentEnvelope()
        hello.migrationStream.migrationID = migrationID
        hello.migrationStream.streamIndex = UInt32(streamIndex)
        if let stripe {
            hello.migrationStream.stripeIndex = UInt32(stripe.index)
            hello.migrationStream.stripeCount = UInt32(stripe.count)
        }
        return EnvelopeWriter.frame(hello)
    }
}

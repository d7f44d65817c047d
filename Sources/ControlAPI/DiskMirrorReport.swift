/// How one local disk travelled in a migration with local disks (a `MigrationReport` entry).
public struct DiskMirrorReport: Codable, Sendable, Equatable {
    /// The disk's position in the VM spec.
    public var index: Int
    /// Its image on the source.
    public var path: String
    /// Bytes the guest sees.
    public var virtualBytes: Int64
    /// Bytes the mirror had copied when it was synchronised (QEMU's job offset).
    public var copiedBytes: Int64
    /// From the start of the mirror to synchronised, ms.
    public var msToReady: Int64
    /// `copiedBytes` over `msToReady`, MB/s (10^6 bytes).
    public var mbPerSecond: Double
    /// The mirror's copy mode: `background` (guest writes are copied after they complete) or
    /// `write-blocking` (a guest write completes once it is on both images).
    public var mode: String

    /// A disk's figures.
    public init(index: Int, path: String, virtualBytes: Int64, copiedBytes: Int64, msToReady: Int64, mbPerSecond: Double, mode: String) {
        self.index = index
        self.path = path
        self.virtualBytes = virtualBytes
        self.copiedBytes = copiedBytes
        self.msToReady = msToReady
        self.mbPerSecond = mbPerSecond
        self.mode = mode
    }
}

import Migration
import Synchronization
import SecureChannel

/// The control channel the pre-flight checklist asked the destination on, kept open for the
/// migration's prepare (Protocol.md §6.9): the prepare then leaves at once instead of after a new
/// channel's TCP and Noise handshakes (two round trips, 300 ms at 150 ms). Handed over once: the
/// first `take` gets it, and whoever takes it closes it; `close` closes it if nobody took it.
final class CheckedControlChannel: Sendable {
    /// The channel and its one reader (the check's answer already read from it), and the
    /// migration stream's channels, opened with it (§6.3) when the migration carries one stream.
    struct Opened {
        let connection: HeldConnection
        var reader: EnvelopeReader
        let streams: PredialedChannels?
    }

    private let opened: Mutex<Opened?>

    init(_ opened: sending Opened) {
        self.opened = Mutex(opened)
    }

    /// The channel, to the first caller only; nil afterwards.
    func take() -> sending Opened? {
        opened.withLock { opened in
            let taken = opened.take()
            return taken
        }
    }

    /// Closes the channels unless they were taken (then their taker closes them).
    func close() async {
        guard let opened = take() else { return }
        opened.streams?.close()
        await opened.connection.close()
    }
}

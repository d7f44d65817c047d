import CSodium

/// Process-wide libsodium initialisation. `sodium_init()` is idempotent and thread-safe, but it
/// must run before any other call; a global `let` is initialised exactly once, lazily, by Swift.
private let sodiumInitResult: Int32 = sodium_init()

/// Entry points that do not belong to a key type.
public enum Sodium {
    /// Runs `sodium_init()` once. Every public entry point of this module calls it.
    /// - Precondition: libsodium initialised; it only fails when the process cannot read
    ///   entropy, which leaves no safe way to continue (a programmer/platform error).
    @inline(__always)
    static func ensureInitialized() {
        precondition(sodiumInitResult >= 0, "libsodium failed to initialise (no entropy source?)")
    }

    /// `count` cryptographically secure random bytes.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        ensureInitialized()
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
        return bytes
    }

    /// A uniformly random integer in `0..<upperBound`.
    public static func randomUniform(_ upperBound: UInt32) -> UInt32 {
        ensureInitialized()
        return randombytes_uniform(upperBound)
    }

    /// Compares two byte strings in time that depends only on their length.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 }
        }
    }

    /// True when libsodium's AES-256-GCM is usable on this CPU (it needs AES-NI and PCLMUL).
    public static var isAES256GCMAvailable: Bool {
        ensureInitialized()
        return crypto_aead_aes256gcm_is_available() == 1
    }

    /// The libsodium version string, for diagnostics.
    public static var version: String {
        ensureInitialized()
        return String(cString: sodium_version_string())
    }
}

import CSodium

/// Secret key material that is wiped with `sodium_memzero` when the last reference goes away.
///
/// A class, not a struct, so that there is exactly one copy of the secret in memory to wipe.
// @unchecked Sendable is safe: `storage` is written only inside `init` (before the object is
// shared) and wiped in `deinit` (after the last reference is gone); every other access reads.
public final class SecretBytes: @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer

    /// Number of secret bytes.
    public let count: Int

    /// Allocates `count` bytes and lets `fill` write them.
    init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        // At least one byte so that `baseAddress` is never nil.
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        self.count = count
        // If `fill` throws, the object is already fully initialised, so `deinit` wipes and frees.
        try fill(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// Copies `bytes` into wiped-on-release storage. The caller should drop its own copy.
    public convenience init(_ bytes: [UInt8]) {
        Sodium.ensureInitialized()
        self.init(count: bytes.count) { dst in
            bytes.withUnsafeBytes { src in dst.copyMemory(from: src) }
        }
    }

    /// `count` random secret bytes.
    public convenience init(randomCount count: Int) {
        Sodium.ensureInitialized()
        self.init(count: count) { dst in
            if count > 0 { randombytes_buf(dst.baseAddress!, count) }
        }
    }

    deinit {
        sodium_memzero(storage.baseAddress!, storage.count)
        storage.deallocate()
    }

    /// Read access for this module's C calls.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy of the secret as an array, for writing key files. The name is loud on purpose.
    public func revealForStorage() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Constant-time equality of two secrets.
    public func constantTimeEquals(_ other: SecretBytes) -> Bool {
        guard count == other.count else { return false }
        if count == 0 { return true }
        return withUnsafeBytes { a in
            other.withUnsafeBytes { b in sodium_memcmp(a.baseAddress!, b.baseAddress!, count) == 0 }
        }
    }
}

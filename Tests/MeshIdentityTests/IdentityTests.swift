import Foundation
import MeshCrypto
import MeshIdentity
import MeshWire
import Testing

/// A fresh temporary directory, removed when the test's scope ends.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "hostmesh-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct KeyFileTests {
    @Test func hostKeyRoundTripsWithMode0600() throws {
        let dir = TempDir()
        let id = try HostIdentity(hostID: "node-a")
        try id.save(inDirectory: dir.path)
        let attrs = try FileManager.default.attributesOfItem(atPath: dir.path + "/host.key")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        let loaded = try HostIdentity.load(fromDirectory: dir.path)
        #expect(loaded.hostID == "node-a")
        #expect(loaded.signingKey.publicKey == id.signingKey.publicKey)
        #expect(loaded.staticKey.publicKey == id.staticKey.publicKey)
        #expect(try HostPublicKeys.load(dir.path + "/host.pub") == id.publicKeys)
    }

    @Test func groupReadableKeyFileIsRefusedWithTheFix() throws {
        let dir = TempDir()
        try HostIdentity(hostID: "node-a").save(inDirectory: dir.path)
        let path = dir.path + "/host.key"
        chmod(path, 0o644)
        #expect(throws: IdentityError.keyFileTooOpen(path: path, mode: 0o644)) { try HostIdentity.load(fromDirectory: dir.path) }
        let message = IdentityError.keyFileTooOpen(path: path, mode: 0o644).description
        #expect(message.contains(path) && message.contains("chmod 600") && message.contains("644"))
        chmod(path, 0o640)
        #expect(throws: IdentityError.keyFileTooOpen(path: path, mode: 0o640)) { try HostIdentity.load(fromDirectory: dir.path) }
    }

    @Test func keyIsNeverOverwritten() throws {
        let dir = TempDir()
        try HostIdentity(hostID: "node-a").save(inDirectory: dir.path)
        #expect(throws: IdentityError.fileExists(path: dir.path + "/host.key")) {
            try HostIdentity(hostID: "node-a").save(inDirectory: dir.path)
        }
    }

    @Test func malformedFilesAreNamed() throws {
        let dir = TempDir()
        let path = dir.path + "/host.key"
        try SecureFile.write(Array("garbage".utf8), to: path, mode: 0o600)
        #expect(throws: IdentityError.self) { try HostIdentity.load(fromDirectory: dir.path) }
        #expect(throws: IdentityError.fileMissing(path: dir.path + "/nope/host.key", what: "host key")) {
            try HostIdentity.load(fromDirectory: dir.path + "/nope")
        }
        #expect(throws: IdentityError.invalidName("Bad Name")) { try HostIdentity(hostID: "Bad Name") }
    }

    @Test func domainSerialAdvancesDurably() throws {
        let dir = TempDir()
        let domain = try DomainAuthority(name: "lab")
        try domain.save(inDirectory: dir.path)
        let reloaded = try DomainAuthority.load(fromDirectory: dir.path)
        #expect(reloaded.trustAnchor == domain.trustAnchor)
        let host = try HostIdentity(hostID: "h1").publicKeys
        let c1 = try reloaded.certify(host, directory: dir.path, notBefore: 0, notAfter: 100)
        let c2 = try reloaded.certify(host, directory: dir.path, notBefore: 0, notAfter: 100)
        #expect(c1.serial == 1 && c2.serial == 2)
        #expect(try DomainTrustAnchor.load(dir.path + "/domain.pub") == domain.trustAnchor)
    }
}

@Suite struct CertificateTests {
    let domain = try! DomainAuthority(name: "lab")
    let host = try! HostIdentity(hostID: "node-a")
    var store: TrustStore { TrustStore(anchors: [domain.trustAnchor], clockSkewSeconds: 0) }

    func cert(notBefore: Int64 = 1000, notAfter: Int64 = 2000, by authority: DomainAuthority? = nil,
              extensions: [Hostmesh_V1_Extension] = []) -> HostCertificate {
        (authority ?? domain).certify(host.publicKeys, serial: 7, notBefore: notBefore, notAfter: notAfter, extensions: extensions)
    }

    @Test func validCertificateVerifiesAndRoundTrips() throws {
        let c = cert()
        #expect(try store.verify(c, now: 1500) == domain.trustAnchor)
        #expect(try store.verify(c, now: 1500, requiredDomain: "lab").name == "lab")
        let again = try HostCertificate(serialized: c.serialized)
        #expect(again == c)
        #expect(try again.staticKey() == host.staticKey.publicKey)
        let dir = TempDir()
        try c.save(dir.path + "/host.cert")
        #expect(try HostCertificate.load(dir.path + "/host.cert") == c)
    }

    @Test func validityWindowIsEnforced() {
        #expect(throws: IdentityError.expired(hostID: "node-a", notAfter: 2000, now: 2000)) { try store.verify(cert(), now: 2000) }
        #expect(throws: IdentityError.notYetValid(hostID: "node-a", notBefore: 1000, now: 999)) { try store.verify(cert(), now: 999) }
        var skewed = store; skewed.clockSkewSeconds = 60
        #expect((try? skewed.verify(cert(), now: 950)) != nil)
    }

    @Test func unknownIssuerIsNamed() throws {
        let other = try DomainAuthority(name: "lab")
        #expect(throws: IdentityError.unknownIssuer(fingerprint: other.signingKey.publicKey.fingerprint, claimedDomain: "lab")) {
            try store.verify(cert(by: other), now: 1500)
        }
    }

    @Test func wrongDomainIsNamed() throws {
        let other = try DomainAuthority(name: "prod")
        var both = store; both.trust(other.trustAnchor)
        #expect(throws: IdentityError.wrongDomain(expected: "lab", actual: "prod", hostID: "node-a")) {
            try both.verify(cert(by: other), now: 1500, requiredDomain: "lab")
        }
        // A domain key trusted under one name cannot issue for another name.
        let impostor = try DomainAuthority(name: "prod", signingKey: domain.signingKey)
        #expect(throws: IdentityError.wrongDomain(expected: "lab", actual: "prod", hostID: "node-a")) {
            try store.verify(cert(by: impostor), now: 1500)
        }
    }

    @Test func tamperedBodyFailsSignature() throws {
        var wire = cert().wire
        var body = try Hostmesh_V1_CertificateBody(serializedBytes: wire.body)
        body.notAfter = 999_999
        wire.body = try body.serializedData()
        let tampered = try HostCertificate(wire)
        #expect(throws: IdentityError.badSignature(hostID: "node-a", domain: "lab")) { try store.verify(tampered, now: 1500) }
    }

    @Test func versionAndCriticalExtensionsAreChecked() throws {
        var critical = Hostmesh_V1_Extension(); critical.id = "future.thing"; critical.critical = true
        #expect(throws: IdentityError.unknownCriticalExtension("future.thing")) { try store.verify(cert(extensions: [critical]), now: 1500) }
        var optional = critical; optional.critical = false
        #expect((try? store.verify(cert(extensions: [optional]), now: 1500)) != nil)
        var wire = cert().wire
        var body = try Hostmesh_V1_CertificateBody(serializedBytes: wire.body)
        body.version = 2
        wire.body = try body.serializedData()
        #expect(throws: IdentityError.unsupportedCertificateVersion(2)) { try HostCertificate(wire) }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var rng = SystemRandomNumberGenerator()
        let valid = cert().serialized
        for i in 0..<2000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = valid
                for _ in 0..<Int.random(in: 1...8, using: &rng) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng) }
            }
            if let c = try? HostCertificate(serialized: bytes), c.serialized != valid {
                // A mutated certificate may still decode, but it must never verify.
                #expect((try? store.verify(c, now: 1500)) == nil)
            }
        }
    }
}

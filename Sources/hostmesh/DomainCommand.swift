import ArgumentParser
import Foundation
import MeshIdentity

struct DomainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domain",
        abstract: "Run an administrative domain: its key certifies the hosts that belong to it.",
        subcommands: [Init.self, Certify.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a domain key (domain.key, mode 0600) and its trust anchor domain.pub.")
        @Argument(help: "Domain name.") var name: String
        @Option(help: "Where to keep the domain key (keep it off the hosts if you can).") var domainDir: String

        func run() throws {
            try FileManager.default.createDirectory(atPath: domainDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let domain = try DomainAuthority(name: name)
            try domain.save(inDirectory: domainDir)
            print("created domain \(name), key \(domain.signingKey.publicKey.fingerprint)")
            print("  trust anchor  \(domainDir)/domain.pub — install on every host: hostmesh keys trust \(domainDir)/domain.pub")
        }
    }

    struct Certify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a host certificate for a host.pub.")
        @Option(help: "The domain's directory.") var domainDir: String
        @Option(help: "The host's host.pub.") var hostPub: String
        @Option(help: "Days of validity.") var validDays = 365
        @Option(help: "Where to write the certificate (default: host.cert next to host.pub).") var out: String?

        func run() throws {
            let domain = try DomainAuthority.load(fromDirectory: domainDir)
            let host = try HostPublicKeys.load(hostPub)
            guard validDays > 0 else { throw ValidationError("--valid-days must be positive") }
            let now = Int64(Date().timeIntervalSince1970)
            let cert = try domain.certify(host, directory: domainDir, notBefore: now - 300, notAfter: now + Int64(validDays) * 86_400)
            let path = out ?? (hostPub as NSString).deletingLastPathComponent + "/host.cert"
            try cert.save(path)
            print("certified \(host.hostID) in domain \(domain.name): serial \(cert.serial), valid \(validDays) days -> \(path)")
        }
    }
}

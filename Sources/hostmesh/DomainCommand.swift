import ArgumentParser
import ControlAPI
import Foundation
import MeshIdentity

struct DomainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domain",
        abstract: "Run an administrative domain: its key certifies the hosts that belong to it.",
        subcommands: [Init.self, Certify.self, Delegate.self, Revoke.self, Revocations.self, Rotate.self, Rotations.self, Federate.self, Federation.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a domain key (domain.key, mode 0600) and its trust anchor domain.pub.")
        @Argument(help: "Domain name.") var name: String
        @Option(help: "Where to keep the domain key (keep it off the hosts if you can).") var domainDir: String
        @Flag(help: "Print JSON instead of text (Deploy/OPERATING.md, \"The command line as JSON\", lists each command's shape).") var json = false

        func run() throws {
            try FileManager.default.createDirectory(atPath: domainDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let domain = try DomainAuthority(name: name)
            try domain.save(inDirectory: domainDir)
            if json {
                print(try JSONOutput.pretty(DomainFiles(domain: name, key: domain.signingKey.publicKey.fingerprint, path: domainDir + "/domain.pub")))
                return
            }
            print("created domain \(name), key \(domain.signingKey.publicKey.fingerprint)")
            print("  trust anchor  \(domainDir)/domain.pub — install on every host: hostmesh keys trust \(domainDir)/domain.pub")
        }
    }

    struct Certify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a host certificate for a host.pub.")
        @Option(help: "The domain's directory.") var domainDir: String
        @Option(help: "The host's host.pub.") var hostPub: String
        @Option(help: "Days of validity (hosts renew online at half of it from an issuer: see `domain delegate`).") var validDays = 7
        @Option(help: "Where to write the certificate (default: host.cert next to host.pub).") var out: String?
        @Flag(help: "Print JSON instead of text (Deploy/OPERATING.md, \"The command line as JSON\", lists each command's shape).") var json = false

        func run() throws {
            let domain = try DomainAuthority.load(fromDirectory: domainDir)
            let host = try HostPublicKeys.load(hostPub)
            guard validDays > 0 else { throw ValidationError("--valid-days must be positive") }
            let now = Int64(Date().timeIntervalSince1970)
            let cert = try domain.certify(host, directory: domainDir, notBefore: now - 300, notAfter: now + Int64(validDays) * 86_400)
            let path = out ?? (hostPub as NSString).deletingLastPathComponent + "/host.cert"
            try cert.save(path)
            if json {
                print(try JSONOutput.pretty(DomainFiles(domain: domain.name, host: host.hostID, serial: cert.serial, notAfter: cert.body.notAfter, path: path)))
                return
            }
            print("certified \(host.hostID) in domain \(domain.name): serial \(cert.serial), valid \(validDays) days -> \(path)")
        }
    }

    struct Delegate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a host an issuer: it renews the certificates of this domain's hosts online, so the domain key can stay offline.",
            discussion: """
                Writes an issuer certificate (signed by the domain key, valid for this domain only) for the host's \
                host.pub, by default to issuer.cert next to it: copy it into that host's state directory and restart \
                its agent. Hosts renew their certificates from any issuer at half their lifetime. Revoke an issuer \
                like any host (`hostmesh domain revoke HOST`): the certificates it signed stop verifying with it.
                """)
        @Option(help: "The domain's directory.") var domainDir: String
        @Option(help: "The issuer host's host.pub.") var hostPub: String
        @Option(help: "Days the delegation lasts.") var validDays = 90
        @Option(help: "Longest host certificate it may issue, in days.") var maxCertificateDays = 30
        @Option(help: "Where to write it (default: issuer.cert next to host.pub).") var out: String?
        @Flag(help: "Print JSON instead of text (Deploy/OPERATING.md, \"The command line as JSON\", lists each command's shape).") var json = false

        func run() throws {
            guard validDays > 0, maxCertificateDays > 0 else { throw ValidationError("--valid-days and --max-certificate-days must be positive") }
            let domain = try DomainAuthority.load(fromDirectory: domainDir)
            let host = try HostPublicKeys.load(hostPub)
            let now = Int64(Date().timeIntervalSince1970)
            let issuer = domain.delegate(to: host, serial: try domain.nextSerial(directory: domainDir), notBefore: now - 300,
                                         notAfter: now + Int64(validDays) * 86_400, maxLifetime: Int64(maxCertificateDays) * 86_400)
            let path = out ?? (hostPub as NSString).deletingLastPathComponent + "/issuer.cert"
            try issuer.save(path)
            if json {
                print(try JSONOutput.pretty(DomainFiles(domain: domain.name, host: host.hostID, serial: issuer.serial, notAfter: issuer.body.notAfter, path: path)))
                return
            }
            print("delegated issuing for domain \(domain.name) to \(host.hostID): serial \(issuer.serial), valid \(validDays) days, certificates up to \(maxCertificateDays) days -> \(path)")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a host (every certificate of it) or one certificate (by serial).",
            discussion: """
                Signs the next version of the domain's revocation list, with the domain key (--domain-dir; the \
                list is also written to <domain-dir>/domain.revocations) or, with --as-issuer, with the key of \
                this host, an issuer of the domain (its issuer.cert; an issuer may only add revocations). The \
                list goes to the local agent, which enforces it at once (closes the host's channels, refuses \
                its handshakes, drops its gossip) and gossips it to the whole mesh. The next version builds \
                on the newest list known here.
                """)
        @Argument(help: "A host id, or a certificate serial (digits only).") var target: String
        @Option(help: "Why, for the logs of every agent (at most 200 bytes).") var reason = ""
        @Option(help: "The domain's directory (sign with the domain key).") var domainDir: String?
        @Flag(help: "Sign as this host, an issuer of the domain (its host.key and issuer.cert in --state-dir).") var asIssuer = false
        @OptionGroup var control: ControlOptions
        @Flag(help: "Only sign and write domain.revocations; publish it later with `hostmesh domain revocations --publish FILE`.")
        var noPublish = false

        func run() async throws {
            let target = try DomainAuthority.RevocationTarget(parsing: self.target)
            let now = Int64(Date().timeIntervalSince1970)
            switch (domainDir, asIssuer) {
            case (let domainDir?, false):
                let domain = try DomainAuthority.load(fromDirectory: domainDir)
                let anchor = TrustStore(anchors: [domain.trustAnchor])
                let path = domainDir + "/domain.revocations"
                var base: RevocationList?
                if FileManager.default.fileExists(atPath: path) {
                    let list = try RevocationList.load(path)
                    try anchor.verify(list)
                    base = list
                }
                if !noPublish, let held = try await agentList(domain.name), held.version > base?.version ?? 0 {
                    try anchor.verify(held)
                    base = held
                }
                let next = try domain.revoke(target, reason: reason, after: base, now: now)
                try next.save(path)
                if !control.json || noPublish { print("revoked \(target) in domain \(domain.name): revocation list version \(next.version), \(next.entries.count) revocation(s) -> \(path)") }
                if !noPublish { try await publish(next) }
            case (nil, true):
                guard !noPublish else { throw ValidationError("--as-issuer publishes to this host's agent; leave out --no-publish") }
                let state = StateDirectory(control.stateDir)
                let issuer = try CertificateIssuer(certificate: try IssuerCertificate.load(state.path + "/issuer.cert"),
                                                   identity: try HostIdentity.load(fromDirectory: state.path))
                let base = try await agentList(issuer.certificate.domain)
                let next = try issuer.revoke(target, reason: reason, after: base, now: now)
                if !control.json || noPublish { print("revoked \(target) in domain \(issuer.certificate.domain) as issuer \(issuer.identity.hostID): revocation list version \(next.version), \(next.entries.count) revocation(s)") }
                try await publish(next)
            default:
                throw ValidationError("give exactly one of --domain-dir (sign with the domain key) and --as-issuer (sign as this issuer host)")
            }
        }

        /// The local agent's list for `domain`, if it holds one (verified by the agent).
        func agentList(_ domain: String) async throws -> RevocationList? {
            let lists = try await control.client.call("revocations", Empty(), as: [ControlTypes.RevocationListInfo].self)
            guard let held = lists.first(where: { $0.domain == domain }), let bytes = Data(base64Encoded: held.list) else { return nil }
            return try RevocationList(serialized: [UInt8](bytes))
        }

        func publish(_ list: RevocationList) async throws {
            let info = try await control.client.call("revocations.publish", ControlTypes.PublishRevocations(list: list.serialized),
                                                     as: ControlTypes.RevocationListInfo.self)
            if control.json { try control.printJSON(info) } else { print("agent at \(control.stateDir): \(info.note ?? "installed version \(info.version)")") }
        }
    }

    struct Revocations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The revocation lists the local agent enforces; --publish hands it a list file (domain.revocations).")
        @OptionGroup var control: ControlOptions
        @Option(help: "A revocation list file to publish to the local agent (verified there against its trust anchors).")
        var publish: String?

        func run() async throws {
            if let publish {
                let list = try RevocationList.load(publish)
                let info = try await control.client.call("revocations.publish", ControlTypes.PublishRevocations(list: list.serialized),
                                                         as: ControlTypes.RevocationListInfo.self)
                if control.json { try control.printJSON(info) } else { print(info.note ?? "installed version \(info.version)") }
                return
            }
            let lists = try await control.client.call("revocations", Empty(), as: [ControlTypes.RevocationListInfo].self)
            if control.json { try control.printJSON(lists); return }
            if lists.isEmpty { print("no revocation list: nothing is revoked"); return }
            for list in lists {
                print("domain \(list.domain): version \(list.version), signed by \(list.issuer)")
            }
            printTable(["DOMAIN", "HOST", "SERIAL", "REVOKED AT", "REASON"], lists.flatMap { list in
                list.entries.map { e in
                    [list.domain, e.host ?? "-", e.serial.map(String.init) ?? "-",
                     ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(e.revokedAt))), e.reason.isEmpty ? "-" : e.reason]
                }
            })
        }
    }
}

/// What `domain init`, `domain certify` and `domain delegate` print with `--json`: the domain, the
/// host and serial of a certificate, its end (Unix seconds), and the file written.
struct DomainFiles: Encodable {
    var domain: String
    var key: String?
    var host: String?
    var serial: UInt64?
    var notAfter: Int64?
    var path: String
}

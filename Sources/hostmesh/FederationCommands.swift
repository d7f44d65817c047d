import ArgumentParser
import ControlAPI
import Foundation
import MeshIdentity

/// Who signs a federation grant: the domain key, or this host as an issuer of the domain.
struct GrantSignerOptions: ParsableArguments {
    @Option(help: "The domain's directory (sign with the domain key).") var domainDir: String?
    @Flag(help: "Sign as this host, an issuer of the domain (its host.key and issuer.cert in --state-dir).") var asIssuer = false

    enum Signer {
        case domain(DomainAuthority)
        case issuer(CertificateIssuer)

        var domain: String {
            switch self {
            case .domain(let authority): return authority.name
            case .issuer(let issuer): return issuer.certificate.domain
            }
        }
    }

    func signer(stateDir: String) throws -> Signer {
        switch (domainDir, asIssuer) {
        case (let domainDir?, false):
            return .domain(try DomainAuthority.load(fromDirectory: domainDir))
        case (nil, true):
            let state = StateDirectory(stateDir)
            return .issuer(try CertificateIssuer(certificate: try IssuerCertificate.load(state.path + "/issuer.cert"),
                                                 identity: try HostIdentity.load(fromDirectory: state.path)))
        default:
            throw ValidationError("give exactly one of --domain-dir (sign with the domain key) and --as-issuer (sign as this issuer host)")
        }
    }
}

/// The local agent's grants (verified by the agent), and publishing one.
extension ControlOptions {
    func heldGrant(domain: String, peer: String) async throws -> FederationGrant? {
        let grants = try await client.call("federation", Empty(), as: [ControlTypes.FederationGrantInfo].self)
        guard let held = grants.first(where: { $0.domain == domain && $0.peerDomain == peer }), let bytes = Data(base64Encoded: held.grant) else { return nil }
        return try FederationGrant(serialized: [UInt8](bytes))
    }

    func publish(_ grant: FederationGrant) async throws {
        let info = try await client.call("federation.publish", ControlTypes.PublishFederationGrant(grant: grant.serialized),
                                         as: ControlTypes.FederationGrantInfo.self)
        if json { try printJSON(info) } else { print("agent at \(stateDir): \(info.note ?? "installed version \(info.version)")") }
    }
}

extension DomainCommand {
    struct Federate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let another domain's hosts open cross-domain channels to this domain's hosts, and say what may move.",
            discussion: """
                Signs a federation grant (Protocol.md §2.9) with the domain key (--domain-dir) or as this issuer \
                host (--as-issuer) and hands it to the local agent, which enforces it and gossips it to every host \
                of the domain. Both domains must grant each other before anything crosses. Hosts of the peer \
                domain, certified by the key in --peer-key, may then open `federation` and `migration-stream` \
                channels only: never join, gossip, push-pull or renewal. Granting the same peer again replaces \
                the grant (the next version); `hostmesh domain federation revoke PEER` withdraws it.
                """)
        @Option(help: "The peer domain's domain.pub (its name and key).") var peerKey: String
        @Flag(help: "Every VM may move.") var allVms = false
        @Option(name: .customLong("label"), help: "Only VMs carrying this label may move (repeatable; one of them suffices).") var labels: [String] = []
        @Option(name: .customLong("network"), help: "THEIRS=OURS or THEIRS=OURS:stretched: their network mapped to ours (repeatable).")
        var networks: [String] = []
        @Option(help: "Absolute directory for the disks of incoming VMs (default: none accepted).") var storageDir: String?
        @Option(help: "Days the grant lasts.") var validDays = 30
        @OptionGroup var signer: GrantSignerOptions
        @OptionGroup var control: ControlOptions

        func run() async throws {
            guard validDays > 0 else { throw ValidationError("--valid-days must be positive") }
            guard allVms != !labels.isEmpty else { throw ValidationError("give either --all-vms or at least one --label") }
            let peer = try DomainTrustAnchor.load(peerKey)
            let terms = FederationTerms(peer: peer, allVMs: allVms, labels: labels,
                                        networks: try networks.map { try FederationTerms.NetworkMapping(parsing: $0) },
                                        storageDirectory: storageDir, notBefore: Int64(Date().timeIntervalSince1970) - 300,
                                        notAfter: Int64(Date().timeIntervalSince1970) + Int64(validDays) * 86_400)
            let now = Int64(Date().timeIntervalSince1970)
            let signer = try signer.signer(stateDir: control.stateDir)
            let base = try await control.heldGrant(domain: signer.domain, peer: peer.name)
            let grant: FederationGrant
            switch signer {
            case .domain(let authority): grant = try authority.federate(terms, after: base, now: now)
            case .issuer(let issuer): grant = try issuer.federate(terms, after: base, now: now)
            }
            if !control.json { print("domain \(grant.domain) federates \(peer.name) (key \(peer.key.fingerprint)): grant version \(grant.version), valid \(validDays) days") }
            try await control.publish(grant)
        }
    }

    struct Federation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The federation grants of this domain: list them, or revoke one; the tombstones of VMs that left for another domain.",
            subcommands: [List.self, Revoke.self, Tombstones.self], defaultSubcommand: List.self)

        struct Tombstones: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "The VMs that left this domain for another: list their tombstones, or remove one.",
                subcommands: [List.self, Remove.self], defaultSubcommand: List.self)

            struct List: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    abstract: "The VMs that left this domain for another: their ids and MACs are not reused here, and an older copy never starts.")
                @OptionGroup var control: ControlOptions

                func run() async throws {
                    let tombstones = try await control.client.call("tombstones", Empty(), as: [ControlTypes.Tombstone].self)
                    if control.json { try control.printJSON(tombstones); return }
                    if tombstones.isEmpty { print("no VM left this host for another domain"); return }
                    let date = ISO8601DateFormatter()
                    printTable(["VM", "ID", "MACS", "NOW ON", "EPOCH", "LEFT"], tombstones.map { t in
                        [t.name, t.vm, t.macs.joined(separator: ","), t.owner, "\(t.epoch)", date.string(from: Date(timeIntervalSince1970: t.at))]
                    })
                }
            }

            struct Remove: AsyncParsableCommand {
                static let configuration = CommandConfiguration(
                    abstract: "Remove a tombstone domain-wide (e.g. the VM was deleted in the other domain): its MACs may be reused; its id stays refused and a stale copy fenced by the ownership record.")
                @Argument(help: "The VM's name or id, as `tombstones` lists it.") var vm: String
                @OptionGroup var control: ControlOptions

                func run() async throws {
                    let removed = try await control.client.call("tombstones.remove", ControlTypes.VMReference(vm: vm), as: ControlTypes.Tombstone.self)
                    if control.json { try control.printJSON(removed); return }
                    print("tombstone of VM \(removed.name) (id \(removed.vm), now on \(removed.owner) at epoch \(removed.epoch)) removed on every host of this domain: "
                        + "MACs \(removed.macs.joined(separator: ",")) may be reused")
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "The grants the local agent holds and enforces.")
            @OptionGroup var control: ControlOptions

            func run() async throws {
                let grants = try await control.client.call("federation", Empty(), as: [ControlTypes.FederationGrantInfo].self)
                if control.json { try control.printJSON(grants); return }
                if grants.isEmpty { print("no federation grant: no other domain is let in"); return }
                let date = ISO8601DateFormatter()
                printTable(["PEER DOMAIN", "PEER KEY", "VERSION", "STATUS", "UNTIL", "VMS", "NETWORKS", "STORAGE"], grants.map { g in
                    [g.peerDomain, g.peerKey, "\(g.version)", g.status + (g.reason.isEmpty ? "" : " (\(g.reason))"),
                     date.string(from: Date(timeIntervalSince1970: TimeInterval(g.notAfter))),
                     g.allVMs ? "all" : "labels " + g.labels.joined(separator: ","),
                     g.networks.isEmpty ? "-" : g.networks.map { "\($0.peerNetwork)=\($0.localNetwork)\($0.stretched ? ":stretched" : "")" }.joined(separator: " "),
                     g.storageDirectory.isEmpty ? "-" : g.storageDirectory]
                })
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Withdraw this domain's grant for a peer domain: its cross-domain channels close on every host.")
            @Argument(help: "The peer domain's name.") var peer: String
            @Option(help: "Why, for the logs of every agent (at most 200 bytes).") var reason = ""
            @OptionGroup var signer: GrantSignerOptions
            @OptionGroup var control: ControlOptions

            func run() async throws {
                let signer = try signer.signer(stateDir: control.stateDir)
                guard let base = try await control.heldGrant(domain: signer.domain, peer: peer) else {
                    throw ValidationError("the agent at \(control.stateDir) holds no grant of \(signer.domain) for \(peer): nothing to revoke (`hostmesh domain federation list`)")
                }
                let now = Int64(Date().timeIntervalSince1970)
                let grant: FederationGrant
                switch signer {
                case .domain(let authority): grant = try authority.revokeGrant(base, reason: reason, now: now)
                case .issuer(let issuer): grant = try issuer.revokeGrant(base, reason: reason, now: now)
                }
                if !control.json { print("domain \(grant.domain) revokes its grant for \(peer): version \(grant.version)") }
                try await control.publish(grant)
            }
        }
    }
}

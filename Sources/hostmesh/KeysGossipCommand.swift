import Agent
import ArgumentParser
import ControlAPI
import Foundation
import GossipTransport
import MeshCrypto
import MeshIdentity

/// `hostmesh keys gossip install|use|remove|list`: the mesh-wide gossip keyring (Protocol.md §4.17).
struct KeysGossipCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gossip",
        abstract: "Rotate the mesh's gossip keyring: install a key, use it as primary, remove the old one.",
        discussion: """
            Each step signs the next version of the domain's keyring record, with the domain key (--domain-dir) \
            or as this host when it is an issuer (--as-issuer), and hands it to the local agent, which sends it to \
            every agent of the domain over the secure channels; a host that was down gets it when it comes back. \
            `list` shows which member holds which key and which one it seals with.
            """,
        subcommands: [Install.self, Use.self, Remove.self, List.self]
    )

    /// Who signs, and which agent gets the record.
    struct SignerOptions: ParsableArguments {
        @Option(help: "The domain's directory (sign with the domain key).") var domainDir: String?
        @Flag(help: "Sign as this host, an issuer of the domain (its host.key and issuer.cert in --state-dir).") var asIssuer = false
        @Flag(help: "Skip the check of what the members announce (a `use` of a key some do not hold yet, a `remove` of a key some still seal with).")
        var force = false
        @OptionGroup var control: ControlOptions

        /// Plans `change` on the agent's keyring, signs it and publishes it (with `secrets`, hex).
        func sign(_ change: GossipKeyringChange, secrets: [String]) async throws {
            let held = try await control.client.call("gossip.keyring", Empty(), as: ControlTypes.GossipKeyringInfo.self)
            let plan = try GossipKeyringPlan(change, held: held, force: force, now: Int64(Date().timeIntervalSince1970))
            let record: GossipKeyringRecord
            switch (domainDir, asIssuer) {
            case (let domainDir?, false):
                record = try DomainAuthority.load(fromDirectory: domainDir).signGossipKeyring(plan.body)
            case (nil, true):
                let state = StateDirectory(control.stateDir)
                record = try CertificateIssuer(certificate: try IssuerCertificate.load(state.path + "/issuer.cert"),
                                               identity: try HostIdentity.load(fromDirectory: state.path)).signGossipKeyring(plan.body)
            default:
                throw ValidationError("give exactly one of --domain-dir (sign with the domain key) and --as-issuer (sign as this issuer host)")
            }
            print("\(change): keyring version \(record.version), primary \(plan.next.primary), keys \(plan.next.keyIDs.map(\.description).joined(separator: ", "))")
            if !plan.stillHolding.isEmpty {
                print("  still held by \(plan.stillHolding.joined(separator: ", ")) until the record reaches them")
            }
            let answer = try await control.client.call("gossip.keyring.publish", ControlTypes.PublishGossipKeyring(record: record.serialized, keys: secrets),
                                                       as: ControlTypes.Text.self)
            print("agent at \(control.stateDir): \(answer.text)")
        }
    }

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Install a new gossip key (every member opens it; all still seal with the primary).")
        @Option(help: "A file holding the key as 64 hex digits (mode 0600); a new random key when left out.") var keyFile: String?
        @OptionGroup var signer: SignerOptions

        func run() async throws {
            let key: GossipKey
            if let keyFile {
                let text = String(decoding: try SecureFile.readSecret(keyFile, what: "gossip key"), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                guard text.utf8.count == 64, let bytes = Hex.decode(text) else {
                    throw ValidationError("\(keyFile) does not hold a gossip key: expected 64 hex digits")
                }
                key = try GossipKey(bytes: bytes)
            } else {
                key = GossipKey.generate()
            }
            try await signer.sign(.install(key), secrets: [Hex.encode(key.revealForStorage())])
        }
    }

    struct Use: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make an installed gossip key the primary: every member seals with it.")
        @Argument(help: "The key id (8 hex digits, as `list` shows).") var id: String
        @OptionGroup var signer: SignerOptions

        func run() async throws {
            guard let id = GossipKeyID(hex: id) else { throw ValidationError("\(self.id) is not a key id: expected 8 hex digits") }
            try await signer.sign(.use(id), secrets: [])
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a gossip key from the mesh (never the primary).")
        @Argument(help: "The key id (8 hex digits, as `list` shows).") var id: String
        @OptionGroup var signer: SignerOptions

        func run() async throws {
            guard let id = GossipKeyID(hex: id) else { throw ValidationError("\(self.id) is not a key id: expected 8 hex digits") }
            try await signer.sign(.remove(id), secrets: [])
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The keyring in force here, and which member holds which key and seals with which.")
        @OptionGroup var control: ControlOptions

        func run() async throws {
            let held = try await control.client.call("gossip.keyring", Empty(), as: ControlTypes.GossipKeyringInfo.self)
            if control.json { return try control.printJSON(held) }
            print("gossip keyring of domain \(held.domain): version \(held.version)\(held.version == 0 ? " (not managed by a signed record yet)" : "")")
            printTable(["KEY", "PRIMARY", "HELD BY"], held.keys.map { key in
                let holders = held.members.filter { $0.keys.contains(key.id) }.map(\.host)
                return [key.id, key.id == held.primary ? "yes" : "", holders.isEmpty ? "-" : holders.joined(separator: ",")]
            })
            print("")
            printTable(["MEMBER", "STATUS", "VERSION", "PRIMARY", "KEYS"], held.members.map { member in
                [member.host, member.status, "\(member.version)", member.primary ?? "-", member.keys.isEmpty ? "-" : member.keys.joined(separator: ",")]
            })
        }
    }
}

import ArgumentParser
import ControlAPI
import Foundation
import MeshIdentity
import MeshCrypto

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage this host's identity key and trusted domains.",
        subcommands: [Init.self, Show.self, Trust.self, Rotate.self, KeysGossipCommand.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create this host's Ed25519 key (host.key, mode 0600) and host.pub.")
        @OptionGroup var state: StateOptions
        @Option(help: "Host id (default: this machine's host name).") var hostID: String?

        func run() throws {
            try FileManager.default.createDirectory(atPath: state.stateDir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            let name = hostID ?? ProcessInfo.processInfo.hostName.lowercased()
            let identity = try HostIdentity(hostID: name)
            try identity.save(inDirectory: state.stateDir)
            if state.json {
                try state.printJSON(KeysReport.Created(host: name, identityKey: identity.signingKey.publicKey.fingerprint,
                                                       keyFile: state.directory.hostKey, publicKeysFile: state.directory.hostPublicKeys))
                return
            }
            print("created host key for \(name)")
            print("  identity key  \(identity.signingKey.publicKey.fingerprint)  (\(state.directory.hostKey), mode 0600)")
            print("  public keys   \(state.directory.hostPublicKeys) — give this to your domain: hostmesh domain certify --host-pub …")
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rotate this host's identity key now (the running agent does it; also automatic, key_rotation_age).",
            discussion: "The agent makes a new key, signs a rotation record with the old and the new key, gets a certificate for the new key from an issuer (see `hostmesh domain delegate`), writes host.key, host.cert and host.pub, and uses the new key for every new channel.")
        @OptionGroup var control: ControlOptions

        func run() async throws {
            try control.printText(try await control.client.call("keys.rotate", Empty(), as: ControlTypes.Text.self))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show this host's keys, certificate and trusted domains.")
        @OptionGroup var state: StateOptions

        func run() throws {
            let identity = try HostIdentity.load(fromDirectory: state.stateDir)
            if state.json { try state.printJSON(try KeysReport.Keys(identity: identity, state: state.directory)); return }
            print("host \(identity.hostID)")
            print("  identity key  \(identity.signingKey.publicKey.fingerprint)")
            print("  static key    \(Hex.encodeShort(identity.staticKey.publicKey.bytes))")
            let certPath = state.directory.hostCertificate
            if !FileManager.default.fileExists(atPath: certPath) {
                print("  certificate   none (\(certPath))")
            } else {
                do {
                    let cert = try HostCertificate.load(certPath)
                    print("  certificate   domain \(cert.domain), serial \(cert.serial), valid \(format(cert.body.notBefore)) to \(format(cert.body.notAfter))")
                } catch {
                    // A certificate that is there but does not load is not "none": say why, the agent will refuse it too.
                    print("  certificate   unusable: \(error)")
                }
            }
            let trust = try TrustStore.load(fromDirectory: state.directory.trustDirectory)
            for anchor in trust.anchors.values.sorted(by: { $0.name < $1.name }) {
                print("  trusts        \(anchor.name) \(anchor.key.fingerprint)")
            }
        }
    }

    struct Trust: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Trust a domain: install its domain.pub into the state directory.")
        @OptionGroup var state: StateOptions
        @Argument(help: "A domain.pub file.") var domainPub: String

        func run() throws {
            let anchor = try DomainTrustAnchor.load(domainPub)
            try FileManager.default.createDirectory(atPath: state.directory.trustDirectory, withIntermediateDirectories: true)
            try anchor.save(state.directory.trustAnchor(domain: anchor.name))
            if state.json { try state.printJSON(KeysReport.Anchor(domain: anchor.name, key: anchor.key.fingerprint)); return }
            print("trusting domain \(anchor.name) (key \(anchor.key.fingerprint))")
        }
    }
}

/// Where a host keeps its identity and state.
struct StateOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: "Host state directory.") var stateDir = StateDirectory.defaultPath
    @Flag(help: "Print JSON instead of text (Deploy/OPERATING.md, \"The command line as JSON\", lists each command's shape).") var json = false

    /// The layout of `stateDir`.
    var directory: StateDirectory { StateDirectory(stateDir) }

    func printJSON(_ value: some Encodable) throws {
        print(try JSONOutput.pretty(value))
    }
}

func format(_ unix: Int64) -> String {
    let f = ISO8601DateFormatter()
    return f.string(from: Date(timeIntervalSince1970: TimeInterval(unix)))
}

extension Hex {
    static func encodeShort(_ bytes: [UInt8]) -> String { encode(bytes.prefix(8)) }
}

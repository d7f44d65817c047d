import ArgumentParser
import ControlAPI
import Foundation
import MeshIdentity

extension DomainCommand {
    /// `hostmesh domain rotate`: the domain moves to a new domain key (Protocol.md §2.10).
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move the domain to a new domain key, cross-signed by the old one; --retire ends the old key's trust.",
            discussion: """
                Without --retire: makes a new domain key, keeps the old one as domain.key.old, writes domain.pub \
                (the new key) and domain.rotation (the record, signed by both keys), and hands the record to the \
                local agent, which sends it to every agent it knows: each then trusts both keys, and stores that. \
                Certificates of either key verify during the overlap; certify or renew the hosts with the new key \
                (issuers: delegate them again with the new key). Then --retire signs a record that retires the old \
                key: every agent refuses certificates and delegations it signed from then on (code 32).
                """)
        @Option(help: "The domain's directory (domain.key; domain.key.old during an overlap).") var domainDir: String
        @Flag(help: "Retire the old key of the rotation under way (domain.key.old).") var retire = false
        @Flag(help: "Only write the files; do not hand the record to the local agent.") var noPublish = false
        @OptionGroup var control: ControlOptions

        func run() async throws {
            let keyPath = domainDir + "/domain.key", oldPath = domainDir + "/domain.key.old", recordPath = domainDir + "/domain.rotation"
            let now = Int64(Date().timeIntervalSince1970)
            let previous = try Self.loadRecord(recordPath)
            let record: DomainKeyRotation
            if retire {
                guard FileManager.default.fileExists(atPath: oldPath) else {
                    throw ValidationError("no rotation under way in \(domainDir) (no domain.key.old): run `hostmesh domain rotate` first")
                }
                let old = try DomainAuthority.load(keyFile: oldPath)
                let new = try DomainAuthority.load(keyFile: keyPath)
                record = DomainKeyRotation(from: old, to: new, version: (previous?.version ?? 0) + 1, issuedAt: now, oldRetired: true)
                try Self.write(record, to: recordPath)
                guard rename(oldPath, domainDir + "/domain.key.retired") == 0 else {
                    throw ValidationError("cannot move domain.key.old aside: \(String(cString: strerror(errno)))")
                }
                if !control.json { print("domain \(new.name): retired key \(old.signingKey.publicKey.fingerprint); only \(new.signingKey.publicKey.fingerprint) is trusted (record version \(record.version)) -> \(recordPath)") }
            } else {
                guard !FileManager.default.fileExists(atPath: oldPath) else {
                    throw ValidationError("a rotation is under way in \(domainDir) (domain.key.old exists): finish it with `hostmesh domain rotate --retire` first")
                }
                let old = try DomainAuthority.load(fromDirectory: domainDir)
                let new = try DomainAuthority(name: old.name)
                record = DomainKeyRotation(from: old, to: new, version: (previous?.version ?? 0) + 1, issuedAt: now, oldRetired: false)
                // The old key first beside, then the record, then the new key in its place.
                try old.saveKey(to: oldPath, overwrite: false)
                try Self.write(record, to: recordPath)
                try new.saveKey(to: keyPath, overwrite: true)
                try new.trustAnchor.save(domainDir + "/domain.pub")
                if !control.json {
                    print("domain \(new.name): new key \(new.signingKey.publicKey.fingerprint) cross-signed by \(old.signingKey.publicKey.fingerprint) (record version \(record.version)) -> \(recordPath)")
                    print("  both keys are trusted until `hostmesh domain rotate --retire --domain-dir \(domainDir)`; certify hosts and delegate issuers with the new key meanwhile")
                }
            }
            guard !noPublish else { return }
            let answer = try await control.client.call("domain.rotation.publish", ControlTypes.PublishDomainKeyRotation(record: record.serialized),
                                                       as: ControlTypes.Text.self)
            if control.json { try control.printJSON(answer) } else { print("agent at \(control.stateDir): \(answer.text)") }
        }

        static func loadRecord(_ path: String) throws -> DomainKeyRotation? {
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            let text = try String(contentsOfFile: path, encoding: .utf8)
            guard let bytes = Armor.decode(text, label: DomainKeyRotation.armorLabel) else {
                throw ValidationError("\(path) is not a domain key rotation file")
            }
            return try DomainKeyRotation(serialized: bytes)
        }

        static func write(_ record: DomainKeyRotation, to path: String) throws {
            try SecureFile.write(Array(record.armored.utf8), to: path, mode: 0o644, overwrite: true)
        }
    }

    /// `hostmesh domain rotations`: what the local agent holds, or --publish a record file.
    struct Rotations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The domain key rotations the local agent holds; --publish hands it a domain.rotation file.")
        @OptionGroup var control: ControlOptions
        @Option(help: "A domain.rotation file to publish to the local agent (verified there against its trust anchors).")
        var publish: String?

        func run() async throws {
            if let publish {
                guard let record = try Rotate.loadRecord(publish) else { throw ValidationError("no file \(publish)") }
                try control.printText(try await control.client.call("domain.rotation.publish", ControlTypes.PublishDomainKeyRotation(record: record.serialized),
                                                                     as: ControlTypes.Text.self))
                return
            }
            let records = try await control.client.call("domain.rotations", Empty(), as: [ControlTypes.DomainKeyRotationInfo].self)
            if control.json { try control.printJSON(records); return }
            if records.isEmpty { print("no domain key rotation held: every domain key is the one in the trust directory"); return }
            printTable(["DOMAIN", "VERSION", "OLD KEY", "NEW KEY", "OLD KEY"], records.map {
                [$0.domain, "\($0.version)", $0.oldKey, $0.newKey, $0.oldRetired ? "retired" : "trusted (overlap)"]
            })
        }
    }
}

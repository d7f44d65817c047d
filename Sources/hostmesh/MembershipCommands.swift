import ArgumentParser
import ControlAPI
import Foundation

struct JoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "join", abstract: "Bring this host into the mesh through any member.")
    @OptionGroup var control: ControlOptions
    @Argument(help: "A member's secure-channel address, host:port.") var address: String

    func run() async throws {
        try control.printText(try await control.client.call("join", ControlTypes.Join(address: address), as: ControlTypes.Text.self))
    }
}

struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "members", abstract: "The mesh as this host sees it.")
    @OptionGroup var control: ControlOptions

    func run() async throws {
        let rows = try await control.client.call("members", Empty(), as: [MemberRow].self)
        if control.json { try control.printJSON(rows); return }
        // CHANNEL is what `join` and `migrate --to` take; GOSSIP is the membership datagram address.
        printTable(["HOST", "DOMAIN", "CHANNEL", "GOSSIP", "STATUS", "INC", "CORES", "MEM FREE", "VMS", "LOAD", "MIGR", "UPDATED"], rows.map { r in
            [r.host + (r.local ? " *" : ""), r.domain, r.channel ?? "-", r.address, r.status, "\(r.incarnation)", "\(r.cores)", "\(r.memoryFreeMiB) MiB",
             "\(r.vms)", String(format: "%.2f", r.load), "\(r.migrations)", String(format: "%.1fs ago", r.lastUpdateSeconds)]
        })
    }
}

struct LeaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "leave", abstract: "Leave the mesh gracefully (members see this host as left, not dead).")
    @OptionGroup var control: ControlOptions

    func run() async throws {
        try control.printText(try await control.client.call("leave", Empty(), as: ControlTypes.Text.self))
    }
}

struct OwnershipCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ownership",
                                                    abstract: "Which host owns each VM, at which epoch, as this host knows it (Protocol.md §6.6).")
    @OptionGroup var control: ControlOptions

    func run() async throws {
        let rows = try await control.client.call("ownership", Empty(), as: [ControlTypes.Ownership].self)
        if control.json { try control.printJSON(rows); return }
        printTable(["VM", "OWNER", "EPOCH"], rows.map { [$0.vm, $0.owner, "\($0.epoch)"] })
    }
}

import ArgumentParser
import Benchmarks
import Foundation
import MeshCrypto

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure hostmesh against its reference, side by side in one run.",
        subcommands: [Channel.self]
    )

    struct Channel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Secure channel bulk throughput vs the raw AEAD on one core (target ratio >= 0.7).")
        @Option(help: "aes-256-gcm or xchacha20-poly1305 (default: what the handshake would negotiate here).") var aead: String?
        @Option(help: "Megabytes per round.") var megabytes = 512
        @Option(help: "Rounds (medians are reported).") var rounds = 3
        @Option(help: "Record payload size in KiB.") var recordKib = 256
        @Flag(help: "Print one JSON object.") var json = false

        func run() async throws {
            let algorithm: AEADAlgorithm
            if let aead {
                guard let a = AEADAlgorithm(rawValue: aead), a != .chacha20poly1305 else {
                    throw ValidationError("--aead must be aes-256-gcm or xchacha20-poly1305")
                }
                algorithm = a
            } else {
                algorithm = AEADAlgorithm.bulkPreference[0]
            }
            let result = try await ChannelBenchmark.run(aead: algorithm, megabytesPerRound: megabytes, rounds: rounds, recordBytes: recordKib * 1024)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                print("secure channel vs raw \(result.aead), \(result.recordBytes / 1024) KiB records, \(megabytes) MB x \(rounds) rounds (medians)")
                print("  raw AEAD seal, 1 core  \(String(format: "%8.0f", result.aeadSealMBs)) MB/s")
                print("  raw AEAD open, 1 core  \(String(format: "%8.0f", result.aeadOpenMBs)) MB/s")
                print("  channel over loopback  \(String(format: "%8.0f", result.channelMBs)) MB/s")
                print("  plain TCP, no crypto   \(String(format: "%8.0f", result.tcpMBs)) MB/s   (same NIO path; context)")
                print("  ratio                  \(String(format: "%8.2f", result.ratio))   channel / slower of seal and open (target >= 0.70)")
                print("  ratio vs seal alone    \(String(format: "%8.2f", result.ratioVsSeal))")
                print("  machine                \(result.machine)")
            }
        }
    }
}

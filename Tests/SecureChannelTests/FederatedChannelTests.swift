import Foundation
import MeshCrypto
import MeshIdentity
import NIOCore
@testable import SecureChannel
import Testing

/// Cross-domain channels over real sockets (Protocol.md §2.9): hosts of two domains that grant
/// each other open `federation` and `migration-stream` channels, never anything else; a grant
/// missing on either side refuses the handshake; a revoked or expired grant closes the open
/// channels with code 24 and the reason, seen on both ends.
@Suite(.timeLimit(.minutes(1))) struct FederatedChannelTests {
    let f = Fixtures()

    /// `domain` grants `peer`, installed in `credentials`' registry.
    func grant(_ credentials: ChannelCredentials, by domain: DomainAuthority, to peer: DomainAuthority, notAfter: Int64? = nil) throws -> FederationGrant {
        let terms = FederationTerms(peer: peer.trustAnchor, allVMs: true, notBefore: f.now - 60, notAfter: notAfter ?? f.now + 3600)
        let grant = try domain.federate(terms, after: credentials.trust.federation.current.grant(of: domain.name, for: peer.name), now: f.now)
        credentials.trust.federation.install(grant, now: f.now)
        return grant
    }

    func connect(_ credentials: ChannelCredentials, port: Int, purpose: String) async throws -> SecureConnection {
        let policy = ChannelPolicy(purpose: purpose, targetDomain: f.lab.trustAnchor)
        return try await SecureConnection.connect(host: "127.0.0.1", port: port,
                                                  configuration: SecureChannelConfiguration(credentials: credentials, policy: policy), logger: testLogger)
    }

    /// A lab host (the listener) and a prod host, each trusting its own domain only.
    func pair() -> (lab: ChannelCredentials, prod: ChannelCredentials) {
        (f.host("lab-1", domain: f.lab, trusting: [f.lab]), f.host("prod-1", domain: f.prod, trusting: [f.prod]))
    }

    @Test func federatedHostsTalkOnFederationChannelsOnly() async throws {
        let (lab, prod) = pair()
        _ = try grant(lab, by: f.lab, to: f.prod)
        _ = try grant(prod, by: f.prod, to: f.lab)
        let server = try await EchoServer.start(lab)
        defer { Task { await server.stop() } }
        for purpose in ["federation", "migration-stream"] {
            let connection = try await connect(prod, port: server.port, purpose: purpose)
            #expect(connection.peer.hostID == "lab-1" && connection.peer.domain == "lab")
            let echoed = try await connection.channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "across the boundary"))
                var it = inbound.makeAsyncIterator()
                return try await it.next().map { String(buffer: $0) }
            }
            #expect(echoed == "across the boundary")
        }
        // Never join, sync (push-pull), renew or the domain's own control channel.
        for purpose in ["join", "sync", "renew", "control"] {
            await #expect {
                _ = try await connect(prod, port: server.port, purpose: purpose)
            } throws: { error in
                (error as? SecureChannelError)?.code == .notFederated && (error as? SecureChannelError)?.detail.contains("\"\(purpose)\"") == true
            }
        }
        #expect(await server.log.waitFor { log in log.errors.filter { $0.code == .notFederated }.count >= 4 })
        #expect(await server.log.peers == ["prod-1", "prod-1"])
    }

    @Test func aGrantMissingOnEitherSideRefusesTheHandshake() async throws {
        // Only prod grants lab: lab's listener knows no prod key.
        let (lab, prod) = pair()
        _ = try grant(prod, by: f.prod, to: f.lab)
        let server = try await EchoServer.start(lab)
        defer { Task { await server.stop() } }
        await #expect { _ = try await connect(prod, port: server.port, purpose: "federation") } throws: {
            ($0 as? SecureChannelError)?.code == .unknownIssuer && ($0 as? SecureChannelError)?.byPeer == true
        }
        #expect(await server.log.waitFor { $0.errors.contains { $0.code == .unknownIssuer } })
        // Only lab grants prod: the prod host cannot verify lab's certificate (and does not dial it).
        let (lab2, prod2) = pair()
        _ = try grant(lab2, by: f.lab, to: f.prod)
        let server2 = try await EchoServer.start(lab2)
        defer { Task { await server2.stop() } }
        await #expect { _ = try await connect(prod2, port: server2.port, purpose: "federation") } throws: {
            ($0 as? SecureChannelError)?.code == .unknownIssuer && ($0 as? SecureChannelError)?.byPeer == false
        }
        #expect(await server.log.peers.isEmpty)
        #expect(await server2.log.peers.isEmpty)
    }

    @Test func aRevokedGrantClosesTheOpenChannelsOnBothEndsAndRefusesNewOnes() async throws {
        let (lab, prod) = pair()
        let labGrant = try grant(lab, by: f.lab, to: f.prod)
        _ = try grant(prod, by: f.prod, to: f.lab)
        let server = try await EchoServer.start(lab)
        defer { Task { await server.stop() } }
        let connection = try await connect(prod, port: server.port, purpose: "federation")
        #expect(await server.log.waitFor { $0.peers == ["prod-1"] })
        #expect(lab.trust.federation.watchedCount == 1 && prod.trust.federation.watchedCount == 1)
        // lab withdraws its grant: the listener side closes the channel with code 24.
        let revoked = try f.lab.revokeGrant(labGrant, reason: "audit finding", now: f.now)
        #expect(lab.trust.federation.install(revoked, now: f.now).cut == 1)
        let failure = try await connection.channel.executeThenClose { inbound, _ -> (any Error)? in
            do { for try await _ in inbound {} } catch { return error }
            return nil
        }
        let seen = failure as? SecureChannelError
        #expect(seen?.code == .notFederated && seen?.byPeer == true && seen?.detail.contains("audit finding") == true)
        #expect(await server.log.waitFor { log in log.errors.contains { $0.code == .notFederated && !$0.byPeer } })
        await #expect { _ = try await connect(prod, port: server.port, purpose: "federation") } throws: {
            ($0 as? SecureChannelError)?.code == .notFederated
        }
        #expect(prod.trust.federation.watchedCount == 0)
    }

    @Test func anExpiredGrantClosesTheChannelAtTheNextSweepOnTheInitiatorsSideToo() async throws {
        let (lab, prod) = pair()
        _ = try grant(lab, by: f.lab, to: f.prod)
        _ = try grant(prod, by: f.prod, to: f.lab, notAfter: f.now + 30)
        let server = try await EchoServer.start(lab)
        defer { Task { await server.stop() } }
        let connection = try await connect(prod, port: server.port, purpose: "migration-stream")
        #expect(prod.trust.federation.sweep(now: f.now + 29) == 0)
        #expect(prod.trust.federation.sweep(now: f.now + 30) == 1)
        let failure = try await connection.channel.executeThenClose { inbound, _ -> (any Error)? in
            do { for try await _ in inbound {} } catch { return error }
            return nil
        }
        // This side closed it: its own reason; the listener hears code 24 from it.
        #expect((failure as? SecureChannelError)?.code == .notFederated)
        #expect(await server.log.waitFor { log in log.errors.contains { $0.code == .notFederated && $0.byPeer && $0.detail.contains("expired") } })
    }
}

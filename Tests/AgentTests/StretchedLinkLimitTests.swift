@testable import Agent
import ControlAPI
import Foundation
import MeshWire
import Testing

/// The limits on stretched links with hosts of another domain (Protocol.md §8.9): the overlay is
/// reached where the channel came from, and at most `maxLinksPerDomain` hosts of a domain link.
@Suite struct StretchedLinkLimitTests {
    @Test func theOverlayIsReachedWhereTheChannelCameFromNotWhereTheHelloSays() throws {
        var hello = Hostmesh_V1_XdomainOverlayHello()
        hello.overlayAddress = "198.51.100.9:4790"
        let address = try StretchedOverlayLinker.overlayAddress(hello, remoteIP: "192.0.2.4")
        #expect(address.host == "192.0.2.4" && address.port == 4790)
        #expect(throws: (any Error).self) { _ = try StretchedOverlayLinker.overlayAddress(hello, remoteIP: nil) }
        hello.overlayAddress = "not an address"
        #expect(throws: (any Error).self) { _ = try StretchedOverlayLinker.overlayAddress(hello, remoteIP: "192.0.2.4") }
    }

    @Test func atMostEightHostsOfOneDomainAreLinked() {
        let cap = StretchedOverlayLinker.maxLinksPerDomain
        let prod = (1...cap).map { "node-\($0)@prod" }
        #expect(StretchedOverlayLinker.capRefusal("node-9@prod", domain: "prod", linked: Array(prod.dropLast())) == nil)
        let refusal = StretchedOverlayLinker.capRefusal("node-9@prod", domain: "prod", linked: prod + ["node-1@lab"])
        #expect(refusal?.contains("at most \(cap)") == true)
        // A host linked already is keyed afresh; another domain has its own count.
        #expect(StretchedOverlayLinker.capRefusal("node-3@prod", domain: "prod", linked: prod) == nil)
        #expect(StretchedOverlayLinker.capRefusal("node-9@lab", domain: "lab", linked: prod) == nil)
        // "prod" is not a suffix match for "preprod".
        #expect(StretchedOverlayLinker.capRefusal("node-9@prod", domain: "prod", linked: (1...cap).map { "node-\($0)@preprod" }) == nil)
    }
}

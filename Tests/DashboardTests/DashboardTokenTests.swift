@testable import Dashboard
import Foundation
import MeshIdentity
import Testing

struct DashboardTokenTests {
    func directory() throws -> String {
        let dir = NSTemporaryDirectory() + "hm-dash-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func tokenIsMadeOnceWithMode0600AndReadBack() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = StateDirectory(dir).dashboardToken
        let first = try DashboardToken.loadOrCreate(path: path)
        #expect(first.count == 64 && first.allSatisfy(\.isHexDigit))
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
        #expect(try DashboardToken.loadOrCreate(path: path) == first)
        let other = try directory()
        defer { try? FileManager.default.removeItem(atPath: other) }
        #expect(try DashboardToken.loadOrCreate(path: StateDirectory(other).dashboardToken) != first) // random, not fixed
    }

    @Test func aTokenFileOthersCanReadOrThatHoldsNoTokenIsRefused() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = StateDirectory(dir).dashboardToken
        _ = try DashboardToken.loadOrCreate(path: path)
        chmod(path, 0o644)
        #expect(throws: DashboardError.self) { try DashboardToken.load(path: path) }
        try "not a token\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o600)
        #expect(throws: DashboardError.self) { try DashboardToken.load(path: path) }
    }

    @Test func tokensAreComparedWhole() {
        let token = String(repeating: "ab", count: 32)
        #expect(DashboardToken.matches(token, token))
        #expect(!DashboardToken.matches(String(token.dropLast()), token))
        #expect(!DashboardToken.matches(token + "0", token))
        #expect(!DashboardToken.matches("", token))
        #expect(!DashboardToken.matches(String(token.dropLast()) + "c", token))
    }

    @Test func everythingRenderedIsEscaped() {
        #expect(HTMLEscape.text(#"<script>alert("x")</script> & 'y'"#) == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;")
        let page = Pages.login(message: "<img src=x onerror=alert(1)>")
        #expect(!page.contains("<img") && page.contains("&lt;img src=x onerror=alert(1)&gt;"))
        // The page's script never parses data as HTML.
        #expect(!Assets.script.contains("innerHTML") && !Assets.script.contains("outerHTML") && !Assets.script.contains("insertAdjacentHTML"))
        #expect(!Assets.script.contains("setInterval") && !Assets.script.contains("setTimeout")) // pushed, never polled
    }
}

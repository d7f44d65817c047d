import Agent
import ControlAPI
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hypervisor
import Testing

/// The web dashboard in a real headless Chromium (WebDriver over HTTP): two real agents, a real
/// QEMU guest migrated from the page, its progress pushed to the page until done.
@Suite(.serialized, .timeLimit(.minutes(3)),
       .enabled(if: TestGuest.available, "build the test guest first: make guest"),
       .enabled(if: WebDriver.available, "install Debian's chromium and chromium-driver: make deps"))
struct DashboardBrowserTests {
    /// Where screenshots are kept: `.build/artifacts` of the package.
    static var artifacts: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent(".build/artifacts").path
    }

    /// The dashboard's bound address, from the agent's log line `dashboard listening dashboard.listen=HOST:PORT`.
    func dashboardAddress(_ agent: AgentProcess) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let log = agent.log
            if let range = log.range(of: "dashboard.listen=") {
                let value = log[range.upperBound...].prefix { !$0.isWhitespace }
                if value.endIndex < log.endIndex, value.contains(":") { return String(value) }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ControlError.failed("the dashboard of \(agent.hostID) did not start: \(agent.log.suffix(2000))")
    }

    func status(_ method: String, _ url: String, headers: [String: String] = [:], body: String? = nil) async throws -> Int {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        for (key, value) in headers { request.setValue(value, forHTTPHeaderField: key) }
        request.httpBody = body.map { Data($0.utf8) }
        let (_, response) = try await URLSession.shared.data(for: request)
        return (response as? HTTPURLResponse)?.statusCode ?? 0
    }

    @Test func operatorLogsInSeesTheMeshAndMigratesAGuestFromThePage() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: ["--dashboard", "127.0.0.1:0"])
        let b = try await mesh.start("node-b", arguments: ["--join", a.address])
        let dashboard = "http://" + (try await dashboardAddress(a))

        // The token: `hostmesh dashboard token` prints what the agent made, and the file is 0600.
        let printed = try runTool(AgentProcess.binary, ["dashboard", "token", "--state-dir", a.stateDirectory])
        let token = printed.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(printed.status == 0 && token.count == 64)
        let mode = (try FileManager.default.attributesOfItem(atPath: a.stateDirectory + "/dashboard.token")[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)

        // Without the token (or with a wrong one) nothing is served, and no action is taken.
        #expect(try await status("GET", dashboard + "/") == 401)
        #expect(try await status("GET", dashboard + "/api/state") == 401)
        #expect(try await status("GET", dashboard + "/events") == 401)
        #expect(try await status("POST", dashboard + "/api/migrate", headers: ["Authorization": "Bearer " + String(repeating: "0", count: 64),
                                                                              "Content-Type": "application/json"], body: #"{"vm":"web","to":"auto"}"#) == 401)
        #expect(try await status("GET", dashboard + "/api/state", headers: ["Authorization": "Bearer " + token]) == 200)
        // A GET never acts; a POST from another site's page is refused.
        #expect(try await status("GET", dashboard + "/api/migrate", headers: ["Authorization": "Bearer " + token]) == 404)
        #expect(try await status("POST", dashboard + "/api/migrate", headers: ["Authorization": "Bearer " + token, "Origin": "http://evil.example",
                                                                              "Content-Type": "application/json"], body: #"{"vm":"web","to":"auto"}"#) == 403)

        let spec = VMSpec(id: UUID().uuidString.lowercased(), name: "web", memoryMiB: 128,
                          boot: .kernel(path: TestGuest.kernel, initrd: TestGuest.initrd, commandLine: "console=ttyS0 quiet"),
                          accelerator: .tcg, extraKernelArguments: ["hm.work=heartbeat"])
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec, start: true), as: VMInfo.self)

        let browser = try await WebDriver.start(directory: mesh.root)
        do { try await drive(browser, dashboard: dashboard, token: token, a: a, b: b) } catch {
            await browser.quit()
            throw error
        }
        await browser.quit()
    }

    /// Waits (up to 20 s) until the element matching `selector` shows `text`.
    func waitForText(_ selector: String, _ text: String, in browser: WebDriver) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if try await browser.text(selector).contains(text) { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ControlError.failed("\(selector) never showed \"\(text)\": \(try await browser.text(selector))")
    }

    /// The operator's part, in the browser.
    func drive(_ browser: WebDriver, dashboard: String, token: String, a: AgentProcess, b: AgentProcess) async throws {
        // The page without the token: the login form, saying why.
        try await browser.navigate(dashboard + "/")
        #expect(try await browser.text("#refused").contains("needs the dashboard token"))
        try await browser.type(try await browser.wait(for: "#token"), token)
        try await browser.click(selector: "#login")

        // Both members, pushed by the event stream.
        _ = try await browser.wait(for: "[data-member=\"node-a\"]")
        _ = try await browser.wait(for: "[data-member=\"node-b\"]")
        #expect(try await browser.text("#live") == "live")

        // Migrate the guest to node-b from the page, and watch it reach done.
        try await browser.click(selector: "select[data-vm=\"web\"] option[value=\"node-b\"]")
        try await browser.click(selector: "button[data-migrate=\"web\"]:not([disabled])")
        _ = try await browser.wait(for: "[data-op-state=\"done\"]", timeout: .seconds(90))
        // The progress lines of `migrate` reached the page as events while it ran (the page keeps the last one).
        let progress = try await browser.script("const op = operations.get('op-1'); return op && op.progress ? [op.progress.phase, op.progress.percent] : null;") as? [Any]
        print("last progress pushed to the page: \(progress.map { "\($0)" } ?? "none")")
        #expect((progress?.first as? String).map { !$0.isEmpty } == true, "no progress event reached the page")
        #expect(try await browser.text("[data-op-state=\"done\"]") == "done")
        let detail = try await browser.text("[data-op-detail]")
        #expect(detail.contains("downtime"), "the finished migration shows its downtime: \(detail)")
        #expect(try await browser.text("#operations").contains("web → node-b"))

        // The guest really moved.
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == ["web"])
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        // The history, pushed with the next state, shows it with its downtime.
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline, !(try await browser.text("#history")).contains(" ms") {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try await browser.text("#history").contains(" ms"))
        // VMs per host: the guest is listed under node-b once node-b's next load report arrives.
        _ = try await browser.wait(for: "[data-host=\"node-b\"] [data-vm-row=\"web\"]", timeout: .seconds(20))
        #expect(try await browser.find("[data-host=\"node-a\"] [data-vm-row=\"web\"]") == nil)

        try FileManager.default.createDirectory(atPath: Self.artifacts, withIntermediateDirectories: true)
        let shot = Self.artifacts + "/dashboard.png"
        try (try await browser.screenshot()).write(to: URL(fileURLWithPath: shot))
        print("dashboard screenshot: \(shot)")

        // Maintenance from the page: node-a (now empty) enters it and is ready at once, then leaves it.
        try await browser.click(selector: "[data-maintenance=\"node-a\"] button")
        try await waitForText("[data-maintenance=\"node-a\"]", "ready for maintenance", in: browser)
        #expect(try await a.control.call("host.maintenance", DRSTypes.Maintenance(action: .status, host: "node-a"),
                                         as: DRSTypes.MaintenanceStatus.self).state == "ready for maintenance")
        try await browser.click(selector: "[data-maintenance=\"node-a\"] button")
        try await waitForText("[data-maintenance=\"node-a\"]", "in service", in: browser)

        // Logged out (no cookie), the page is refused again.
        try await browser.deleteCookies()
        try await browser.navigate(dashboard + "/")
        #expect(try await browser.text("#refused").contains("needs the dashboard token"))
    }
}

import ArgumentParser
import Dashboard
import Foundation

struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "The web dashboard (served by the agent with dashboard_listen / --dashboard).",
        subcommands: [Token.self]
    )

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the dashboard's access token, creating it first if there is none (dashboard.token, mode 0600).",
            discussion: "Paste it into the dashboard's login page. To change it, delete the file and restart the agent.")
        @OptionGroup var state: StateOptions

        func run() throws {
            let token = try DashboardToken.loadOrCreate(path: state.directory.dashboardToken)
            if state.json {
                try state.printJSON(["token": token, "path": state.directory.dashboardToken])
            } else {
                print(token)
            }
        }
    }
}

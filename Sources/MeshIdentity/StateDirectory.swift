/// The layout of a host's state directory, the one place that names its files (Protocol.md §2
/// and §7). The key commands, the agent and the control commands all find their files through it.
///
/// It lives in MeshIdentity, the lowest module both the command line and the agent use: most of
/// the layout is identity material (`host.key`, `host.pub`, `host.cert`, `trust/`) that this
/// module already reads and writes, and the control socket's path is only a name in the same
/// directory (ControlAPI takes a path and needs nothing from here).
public struct StateDirectory: Sendable, Hashable, CustomStringConvertible {
    /// Where a host keeps its state unless told otherwise (`--state-dir`, `state_dir`).
    public static let defaultPath = "/var/lib/hostmesh"

    /// The directory itself.
    public var path: String

    /// The state directory at `path` (default `defaultPath`); nothing is created or checked.
    public init(_ path: String = StateDirectory.defaultPath) { self.path = path }

    /// `host.key`: the host's secret identity key, mode 0600 (`HostIdentity.save`).
    public var hostKey: String { path + "/host.key" }
    /// `host.pub`: the host's public keys, what `hostmesh domain certify` takes.
    public var hostPublicKeys: String { path + "/host.pub" }
    /// `host.cert`: the host's certificate from its domain.
    public var hostCertificate: String { path + "/host.cert" }
    /// `trust/`: one `<domain>.pub` per trusted domain.
    public var trustDirectory: String { path + "/trust" }
    /// `trust/<domain>.pub`: where `hostmesh keys trust` installs a domain's anchor.
    public func trustAnchor(domain: String) -> String { trustDirectory + "/\(domain).pub" }
    /// `control.sock`: the agent's control socket, mode 0600 (Protocol.md §7).
    public var controlSocket: String { path + "/control.sock" }
    /// `dashboard.token`: the web dashboard's access token, mode 0600 (`hostmesh dashboard token`).
    public var dashboardToken: String { path + "/dashboard.token" }

    /// The path.
    public var description: String { path }
}

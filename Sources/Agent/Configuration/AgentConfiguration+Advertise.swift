import ControlAPI
import Hypervisor
import Logging

extension AgentConfiguration {
    /// This configuration with `advertiseHost` set when it was not and a listener is a wildcard:
    /// the address of the interface holding the default route, or the only non-loopback one
    /// (memberlist and Consul do the same). Throws, naming the candidates and the option, when
    /// the choice is ambiguous or there is none.
    func resolvingAdvertiseHost(logger: Logger, choose: () -> Result<HostAddresses.Address, HostAddresses.ChoiceError> = HostAddresses.advertised) throws -> AgentConfiguration {
        guard advertiseHost == nil, channelListen.isWildcard || gossipListen.isWildcard || overlayListen.isWildcard else { return self }
        switch choose() {
        case .success(let chosen):
            logger.info("advertising this host's address (advertise_host was not set and a listener is a wildcard)",
                        metadata: ["mesh.advertise": "\(chosen.address)", "mesh.interface": "\(chosen.interface)"])
            var resolved = self
            resolved.advertiseHost = chosen.address
            return resolved
        case .failure(let error):
            throw AgentError.badConfiguration(path: "advertise_host", reason: error.description)
        }
    }

    /// The host other hosts reach a listener on: its own, or the advertised one for a wildcard.
    func reachableHost(of listen: HostPort) -> String {
        listen.isWildcard ? (advertiseHost ?? listen.host) : listen.host
    }
}

/// The accelerator QEMU actually runs with.
public enum AcceleratorChoice: String, Codable, Sendable {
    /// Hardware virtualization.
    case kvm
    /// Software emulation (Tiny Code Generator).
    case tcg
}

/// Builds QEMU's argv from a `VMSpec`. A pure function: same spec, same directory, same argv,
/// which is what makes a migration destination match its source device for device.
public enum QEMUCommandLine {
    /// How QEMU starts.
    public enum Mode: Sendable, Equatable {
        /// Boot the guest; `paused` adds `-S` (vCPUs wait for `cont`).
        case boot(paused: Bool)
        /// Wait for an incoming migration whose URI the agent sets later with `migrate-incoming`
        /// (`-incoming defer`), so the agent controls where the stream comes from; the guest
        /// stays paused after it arrives (`-S`) until the agent resumes it.
        case incoming
        /// Like `incoming`, but QEMU runs the guest as soon as it has arrived (QEMU's own
        /// behaviour without `-S`). Only for measuring plain QEMU as a reference: nothing then
        /// stops the source and destination from both running after a late failure.
        case incomingAutostart
    }

    /// The argv (without the binary) for `spec` running in `directory` under `accelerator`,
    /// with `memoryKiB` of guest RAM (`GuestRAM.kib`, or a migration source's figure). The disks
    /// at `directIO` open with O_DIRECT (`cache.direct=on`, QEMU's `cache=none`), the others
    /// through the host's page cache (`HostStorage.supportsDirectIO` decides, per disk).
    public static func arguments(for spec: VMSpec, in directory: VMRuntimeDirectory,
                                 accelerator: AcceleratorChoice, memoryKiB: Int, mode: Mode,
                                 directIO: Set<Int> = []) throws(VMSpecError) -> [String] {
        try spec.validate()
        var argv: [String] = [
            "-name", "guest=\(escape(spec.name)),debug-threads=on",
            "-machine", escape(spec.machine),
            "-accel", accelerator.rawValue,
            "-cpu", escape(spec.cpuModel),
            "-smp", "\(spec.vcpus)",
            "-m", memoryArgument(kib: memoryKiB),
            "-nodefaults", "-no-user-config",
            "-display", "none",
            "-chardev", "file,id=serial0,path=\(escape(directory.consoleLog))",
            "-serial", "chardev:serial0",
            // The adoption check looks for exactly this argument in /proc/<pid>/cmdline.
            "-qmp", qmpArgument(directory),
            "-pidfile", directory.pidFile,
            "-msg", "timestamp=on",
        ]
        for (index, disk) in spec.disks.enumerated() {
            let node = "disk\(index)"
            let readOnly = disk.readOnly ? "on" : "off"
            let cache = directIO.contains(index) ? ",cache.direct=on" : ""
            argv += ["-blockdev", "driver=file,filename=\(escape(disk.path)),node-name=\(node)-file,read-only=\(readOnly)\(cache)"]
            argv += ["-blockdev", "driver=\(disk.format.rawValue),file=\(node)-file,node-name=\(node),read-only=\(readOnly)"]
            var device = "virtio-blk-pci,drive=\(node),id=\(node)-dev"
            if case .disk = spec.boot, index == 0 { device += ",bootindex=0" }
            argv += ["-device", device]
        }
        for nic in spec.nics {
            switch nic.attachment {
            case let .dgram(localPath, remotePath):
                argv += ["-netdev", "dgram,id=\(nic.id),local.type=unix,local.path=\(escape(localPath)),remote.type=unix,remote.path=\(escape(remotePath))"]
            case let .stream(path):
                argv += ["-netdev", "stream,id=\(nic.id),server=off,addr.type=unix,addr.path=\(escape(path))"]
            case .none:
                break
            }
            // romfile= : no iPXE option ROM, which only slows boot and must match across a migration.
            var device = "virtio-net-pci,id=\(nic.id)-dev,mac=\(nic.mac.lowercased()),romfile="
            if nic.attachment != .none { device += ",netdev=\(nic.id)" }
            argv += ["-device", device]
        }
        if case let .kernel(path, initrd, commandLine) = spec.boot {
            argv += ["-kernel", path]
            if let initrd { argv += ["-initrd", initrd] }
            let append = ([commandLine] + spec.extraKernelArguments).filter { !$0.isEmpty }.joined(separator: " ")
            if !append.isEmpty { argv += ["-append", append] }
        }
        switch mode {
        case let .boot(paused): if paused { argv.append("-S") }
        // -S: the guest stays paused once it has arrived, until the agent resumes it (`cont`).
        // Without it QEMU would run the guest the moment the stream ends, before the agents
        // have agreed who owns it; if the source then saw a late failure and resumed its copy,
        // two copies would run.
        case .incoming: argv += ["-incoming", "defer", "-S"]
        case .incomingAutostart: argv += ["-incoming", "defer"]
        }
        return argv
    }

    /// Guest RAM in `-m` form: `kib` KiB (`GuestRAM` decides the figure).
    public static func memoryArgument(kib: Int) -> String {
        kib % 1024 == 0 ? "\(kib / 1024)M" : "\(kib)k"
    }

    /// The `-qmp` argument for `directory`.
    static func qmpArgument(_ directory: VMRuntimeDirectory) -> String {
        "unix:\(directory.qmpSocket),server=on,wait=off"
    }

    /// QEMU option values escape a comma by doubling it.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: ",", with: ",,")
    }
}

// VirtualSwitch: the per-host userspace switch, its encrypted overlay and the port state that
// moves with a VM at migration (issue 5). Work in progress.

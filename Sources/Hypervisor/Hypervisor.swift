// Hypervisor (placeholder).

// VirtualSwitch tests: work in progress.

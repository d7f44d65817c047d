// Keeps the target buildable until its first files land; delete when the module has real sources.

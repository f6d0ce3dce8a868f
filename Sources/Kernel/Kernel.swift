// Kernel module: see Docs/architecture.md.

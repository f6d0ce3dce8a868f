// Daemon module: see Docs/architecture.md.

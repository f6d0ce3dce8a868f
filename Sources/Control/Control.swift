// Control module: see Docs/architecture.md.

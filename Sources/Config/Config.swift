// Config module: see Docs/architecture.md.

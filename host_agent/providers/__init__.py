"""Built-in capability providers, each run by the host as a separate process like real ones."""

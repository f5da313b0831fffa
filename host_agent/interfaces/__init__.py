"""Interface shapes shared by the runtime, the wRPC transport and the providers.

This package sits below all three: it imports nothing from the rest of `host_agent` and
nothing native (no wasmtime), so a provider process loads only what it serves.
"""

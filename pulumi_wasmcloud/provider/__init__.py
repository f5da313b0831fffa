"""The native provider plugin (``pulumi-resource-wasmcloud``), package token ``wasmcloud``."""

"""The lattice layer of pulumi-wasmcloud: what runs on every machine of a lattice.

It must never import ``pulumi`` or ``pulumi_wasmcloud`` (a test enforces this): hosts
install it with few dependencies.
"""

__version__ = "0.1.0"

"""Command-line entry points (``wasmcloud``; later ``wasmcloud-host``, ``wasmcloud-controller``)."""

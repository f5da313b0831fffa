"""Run WASI 0.2 components with wasmtime: the host side of every import they make."""

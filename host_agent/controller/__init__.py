"""The lattice controller: wadm's API and reconciliation for wasmCloud 1.x lattices."""

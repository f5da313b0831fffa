"""wRPC over NATS: how components and providers call each other across the lattice."""

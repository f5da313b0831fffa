"""Who may reach a lattice's NATS and what each identity may do there: NATS JWTs, per-role
permissions, the lattice's signing authority, TLS material and grants."""

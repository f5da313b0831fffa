"""Running a lattice's processes on this machine, detached and supervised by pidfiles."""

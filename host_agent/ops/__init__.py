"""Day-2 views of a running lattice for the ``wasmcloud`` CLI (pure: no NATS here).

``inventory`` (hosts and what runs on each), ``apps`` (applications and their status),
``logs`` (host log records as lines) and ``placement`` (the planner on the live hosts)
turn what the control interface, the wadm API and the hosts' log subject answer into
the ``--json`` documents scripts read and the tables people read (rich).
``host_agent.cli.ops`` does the talking.
"""

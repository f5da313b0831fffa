"""wasmCloud 1.x lattice protocol: subjects, message shapes, events, and a control client.

Subjects and JSON shapes are defined here once; the host, the controller and the Pulumi
provider all use them.
"""

"""The wasmcloud package's schema: every resource's and function's inputs and outputs,
defined once (types.py's data classes).

- ``resources.py``: ``RESOURCES``, one ``Resource`` per type (Lattice, Host, ...).
- ``objects.py``: ``OBJECT_TYPES`` used inside properties (SshMachine, LeafNode).
- ``functions.py``: ``FUNCTIONS: tuple[Function, ...]`` (getLattice, planPlacement) and,
  for their results, ``OBJECT_TYPES: tuple[ObjectType, ...]``; ``package.py`` collects both.
- ``package.py``: the Pulumi package schema JSON (the provider's GetSchema).

From these the provider checks input types, marks secrets and replacements; the Python
SDK is checked against them (tests/unit/test_sdk_schema.py) and docs/reference/ is
generated from them (``python -m pulumi_wasmcloud.schema.docs``).

Only the standard library here: the provider plugin imports it on every preview.
"""

"""Malformed requests for tests: which JSON kinds each known field accepts (upstream serde's
types), and hypothesis strategies for a value of any other kind."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import strategies as st

STRING, INTEGER, FLOAT, BOOL, NULL, LIST, OBJECT = (
    "string",
    "integer",
    "float",
    "bool",
    "null",
    "list",
    "object",
)

# operation -> field -> the JSON kinds serde accepts there. Values of any other kind must
# be refused, naming the field.
WADM_FIELDS: dict[str, dict[str, set[str]]] = {
    "get": {"version": {STRING, NULL}},
    "del": {"version": {STRING, NULL}},
    "deploy": {"version": {STRING, NULL}},
}
CTL_FIELDS: dict[str, dict[str, set[str]]] = {
    "component.scale": {
        "component_id": {STRING},
        "component_ref": {STRING},
        "count": {INTEGER},
        "host_id": {STRING},
        "annotations": {OBJECT, NULL},
        "config": {LIST},
        "allow_update": {BOOL},
        "max_linear_memory": {INTEGER, NULL},
    },
    "component.update": {
        "component_id": {STRING},
        "new_component_ref": {STRING},
        "host_id": {STRING},
        "annotations": {OBJECT, NULL},
    },
    "provider.start": {
        "provider_id": {STRING},
        "provider_ref": {STRING},
        "host_id": {STRING},
        "config": {LIST},
        "annotations": {OBJECT, NULL},
    },
    "provider.stop": {"provider_id": {STRING}, "host_id": {STRING}},
    "host.stop": {"host_id": {STRING}, "timeout": {INTEGER, NULL}},
    "label.put": {"key": {STRING}, "value": {STRING}},
    "label.del": {"key": {STRING}, "value": {STRING}},
    "link.put": {
        "source_id": {STRING},
        "target": {STRING},
        "name": {STRING},
        "wit_namespace": {STRING},
        "wit_package": {STRING},
        "interfaces": {LIST},
        "source_config": {LIST},
        "target_config": {LIST},
    },
    "link.del": {
        "source_id": {STRING},
        "name": {STRING},
        "wit_namespace": {STRING},
        "wit_package": {STRING},
    },
}

_scalars = st.text(max_size=6) | st.integers(-(2**40), 2**40) | st.booleans()
VALUES_OF_KIND: dict[str, st.SearchStrategy[Any]] = {
    STRING: st.text(max_size=12),
    INTEGER: st.integers(-(2**70), 2**70),
    # Whole floats too: serde reads 1.0 as a float, never as an integer.
    FLOAT: st.floats(allow_nan=False, allow_infinity=False, width=32),
    BOOL: st.booleans(),
    NULL: st.none(),
    LIST: st.lists(_scalars, max_size=3),
    OBJECT: st.dictionaries(st.text(max_size=6), _scalars, max_size=3),
}


def wrong_value(accepted: set[str]) -> st.SearchStrategy[Any]:
    """A JSON value of a kind the field does not accept."""
    return st.one_of([VALUES_OF_KIND[kind] for kind in VALUES_OF_KIND if kind not in accepted])


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def names_field(message: str, field: str) -> bool:
    """``message`` blames ``field`` (``field: ...``, ``field.key: ...``, ``field[0]: ...``)."""
    return re.search(rf"(^|[\s;:]){re.escape(field)}([:.\[])", message) is not None

"""The wadm application model: types, validation, YAML/JSON load and dump. Pure, no I/O
beyond reading the file a caller names."""

from host_agent.model.issues import ManifestError, ManifestIssue, Severity
from host_agent.model.loader import (
    ParsedManifest,
    dump_json,
    dump_yaml,
    load_manifest,
    parse_manifest,
    parse_manifest_text,
)
from host_agent.model.manifest import (
    Component,
    LinkProperties,
    LinkTrait,
    Manifest,
    ScalerProperties,
    ScalerTrait,
    Spread,
)
from host_agent.model.naming import normalize_name

__all__ = [
    "Component",
    "LinkProperties",
    "LinkTrait",
    "Manifest",
    "ManifestError",
    "ManifestIssue",
    "ParsedManifest",
    "ScalerProperties",
    "ScalerTrait",
    "Severity",
    "Spread",
    "dump_json",
    "dump_yaml",
    "load_manifest",
    "normalize_name",
    "parse_manifest",
    "parse_manifest_text",
]

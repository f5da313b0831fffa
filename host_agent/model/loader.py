"""Load and dump manifests (YAML or JSON) with path-level errors instead of tracebacks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from host_agent.model.issues import ManifestError, ManifestIssue, Severity, format_path
from host_agent.model.manifest import UNION_TAGS, Manifest
from host_agent.model.validation import validate_manifest

# What to add when a required field is missing, for the fields people forget.
MISSING_FIELD_FIXES = {
    "apiVersion": "add `apiVersion: core.oam.dev/v1beta1`",
    "kind": "add `kind: Application`",
    "annotations": "add `annotations: {version: v0.0.1}`; wadm requires the key even if empty",
    "requirements": "add `requirements: {}` to match every host, or the labels a host must have",
    "instances": "add `instances: <count>`",
    "target": "add `target: {name: <component name>}`",
    "namespace": "add e.g. `namespace: wasi`",
    "package": "add e.g. `package: http`",
    "interfaces": "add e.g. `interfaces: [incoming-handler]`",
    "components": "add `components:` with at least one component",
    "type": "add `type: component` or `type: capability`",
    "properties": "add `properties:`",
}


@dataclass(frozen=True)
class ParsedManifest:
    manifest: Manifest
    warnings: tuple[ManifestIssue, ...]


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # Discriminated unions add their tag to the location; a person never wrote it.
    return tuple(part for part in loc if not (isinstance(part, str) and part in UNION_TAGS))


def _describe(error: ErrorDetails) -> tuple[str, str]:
    """(message, fix) for one pydantic error, in the words of someone editing YAML."""
    kind = error["type"]
    ctx = error.get("ctx", {})
    field = next((p for p in reversed(error["loc"]) if isinstance(p, str)), "")
    if kind == "missing":
        return "required field is missing", MISSING_FIELD_FIXES.get(field, f"add `{field}`")
    if kind == "extra_forbidden":
        return f"unknown field `{field}`", "remove it or check its spelling"
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}", "use a whole number, 0 or more"
    if kind in {"int_type", "int_parsing", "int_from_float"}:
        return "must be a whole number", "write it without quotes, e.g. `3`"
    if kind == "string_type":
        return "must be a string", 'quote the value, e.g. "8080"'
    if kind == "list_type":
        return "must be a list", "write it as a YAML list (`- item` lines or `[a, b]`)"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return "must be a mapping", "write it as `key: value` lines"
    if kind == "too_short":
        return "must not be empty", "list at least one entry"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}", "use one of the allowed values"
    return error["msg"], ""


def issues_from_validation_error(exc: ValidationError) -> list[ManifestIssue]:
    issues = []
    for error in exc.errors():
        message, fix = _describe(error)
        issues.append(ManifestIssue(format_path(_clean_loc(error["loc"])), message, fix))
    return issues


def parse_manifest(data: Any, source: str = "") -> ParsedManifest:
    """Validate manifest data as wadm would; raise ManifestError listing every problem."""
    if not isinstance(data, dict):
        raise ManifestError(
            [
                ManifestIssue(
                    "",
                    "a manifest must be a mapping with apiVersion, kind, metadata and spec",
                    "check the file is a wadm application",
                )
            ],
            source,
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(issues_from_validation_error(exc), source) from None
    findings = validate_manifest(manifest)
    errors = [issue for issue in findings if issue.severity is Severity.ERROR]
    if errors:
        raise ManifestError(errors, source)
    return ParsedManifest(manifest, tuple(i for i in findings if i.severity is Severity.WARNING))


def parse_manifest_text(text: str | bytes, source: str = "") -> ParsedManifest:
    """Parse YAML (a superset of JSON, so JSON manifests load too)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ManifestError(
            [
                ManifestIssue(
                    "",
                    f"{where}not valid YAML or JSON ({getattr(exc, 'problem', exc)})",
                    "fix the syntax at that position",
                )
            ],
            source,
        ) from None
    return parse_manifest(data, source)


def load_manifest(path: str | Path) -> ParsedManifest:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(
            [ManifestIssue("", f"cannot read {path}: {exc.strerror}", "check the path")], str(path)
        ) from None
    return parse_manifest_text(text, str(path))


def dump_yaml(manifest: Manifest) -> str:
    return yaml.safe_dump(manifest.to_data(), sort_keys=False, allow_unicode=True)


def dump_json(manifest: Manifest, *, indent: int | None = 2) -> str:
    return json.dumps(manifest.to_data(), indent=indent)

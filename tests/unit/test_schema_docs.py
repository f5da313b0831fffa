"""docs/reference/ is what the schema generates today, and its examples are right: the
Python ones compile, the YAML ones give each resource properties of the schema's names
and types (``${...}`` references are values not known until the program runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pulumi_wasmcloud.schema import docs
from pulumi_wasmcloud.schema.package import functions, object_types
from pulumi_wasmcloud.schema.resources import RESOURCES, resource
from pulumi_wasmcloud.schema.types import Resource
from pulumi_wasmcloud.schema.validate import check_inputs


def test_the_committed_reference_is_up_to_date() -> None:
    stale = docs.stale(docs.REFERENCE)
    assert stale == [], (
        f"docs/reference/ is out of date ({', '.join(stale)}): "
        "run python -m pulumi_wasmcloud.schema.docs and commit the pages"
    )


def test_a_changed_description_a_missing_and_a_leftover_page_are_stale(tmp_path: Path) -> None:
    assert docs.main(["--out", str(tmp_path)]) == 0
    assert docs.stale(tmp_path) == []
    (tmp_path / "Host.md").write_text((tmp_path / "Host.md").read_text().replace("labels", "x"))
    (tmp_path / "Secret.md").unlink()
    (tmp_path / "Old.md").write_text("a resource that is gone")
    assert docs.stale(tmp_path) == ["Host.md", "Old.md", "Secret.md"]
    assert docs.main(["--out", str(tmp_path), "--check"]) == 1
    docs.main(["--out", str(tmp_path)])
    assert docs.stale(tmp_path) == []


def test_every_resource_and_function_has_a_page_with_both_examples() -> None:
    pages = docs.pages()
    for item in (*RESOURCES, *functions()):
        page = pages[f"{item.name}.md"]
        assert item.token in page
        assert "```python" in page and "```yaml" in page, item.name
        assert f"({item.name}.md)" in pages["README.md"]


@pytest.mark.parametrize("defined", RESOURCES, ids=lambda r: r.name)
def test_the_python_example_compiles(defined: Resource) -> None:
    compile(defined.examples["python"], f"{defined.name}.py", "exec")


def referenced(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${")


@pytest.mark.parametrize("defined", RESOURCES, ids=lambda r: r.name)
def test_the_yaml_example_s_properties_are_the_schema_s(defined: Resource) -> None:
    program = yaml.safe_load(defined.examples["yaml"])
    objects = {o.token: o for o in object_types()}
    declared = program["resources"].values()
    assert defined.token in {r["type"] for r in declared}
    for item in declared:
        of_type = resource(item["type"])
        assert of_type is not None, item["type"]
        problems = check_inputs(of_type, item.get("properties", {}), objects, referenced)
        assert problems == [], problems

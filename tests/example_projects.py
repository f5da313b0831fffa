"""An example's Pulumi project in a throwaway folder, so a test (or a benchmark) runs it
with the real CLI while the stack's config and state stay out of examples/."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml


def example_project(example: Path, folder: Path, stack: str | None = None) -> Path:
    """``example``'s Pulumi.yaml in ``folder``, with its program (``main``) and the venv
    paths made absolute; with ``stack``, the example's ``Pulumi.<stack>.yaml`` next to it,
    so ``pulumi stack init <stack>`` starts from the config the example ships."""
    project = yaml.safe_load((example / "Pulumi.yaml").read_text())
    project["main"] = str(example)
    options = project["runtime"]["options"]
    options["virtualenv"] = str((example / options["virtualenv"]).resolve())
    for plugins in project["plugins"].values():
        for plugin in plugins:
            plugin["path"] = str((example / plugin["path"]).resolve())
    folder.mkdir(parents=True)
    (folder / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    if stack is not None:
        shutil.copyfile(example / f"Pulumi.{stack}.yaml", folder / f"Pulumi.{stack}.yaml")
    return folder

"""The wheels a machine installs the host agent (and the controller) from.

Machines have no internet, so the runner (which has PyPI) builds a wheelhouse once: the
project's own wheel, built from its source tree, plus every wheel its base dependencies
need (never the ``pulumi`` extra), at exactly the versions installed beside this
provider, which are the versions its tests ran with. It is cached per machine outside
the clone, like the tools in scripts/tool-cache.sh:

    ${PULUMI_WASMCLOUD_CACHE:-${XDG_CACHE_HOME:-~/.cache}/pulumi-wasmcloud}/wheelhouse/<key>/

keyed by what goes into it (the project's version, a hash of its source, the dependency
pins, the Python and platform the wheels are for); an entry is built under a lock in a
temporary directory and renamed when complete, so concurrent runs never see half of one.
The dependency wheels, which are what take minutes (downloads, an sdist build), have an
entry of their own keyed by the pins only, so a source change rebuilds just our wheel.

The host's native wasi:http host (native/), when it was built on this machine
(scripts/build-native.sh), goes in too: hosts on machines then run proxy-world components
natively as local ones do.

Machines do not run pip: each entry also holds its wheels installed once, here, into one
site-packages tree (``pip install --target``, byte-compiled), as a gzip'd tar
(``site-packages.tar.gz``) that a machine extracts into a venv made ``--without-pip``.
Making a venv with pip (ensurepip) and running pip took about 11 s of CPU on every
machine; extracting takes under one.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pulumi_wasmcloud.provision.connector import ProvisionError
from pulumi_wasmcloud.provision.native_wheel import built_wheel

DISTRIBUTION = "pulumi-wasmcloud"
# What of the source tree goes into the project's wheel (and so into its hash).
SOURCE_PACKAGES = ("host_agent", "pulumi_wasmcloud")
SOURCE_FILES = ("pyproject.toml", "README.md")
# Zip entries get this time instead of the files' mtimes, so building the same source
# twice gives the same bytes (bdist_wheel honours SOURCE_DATE_EPOCH).
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip entry can hold
BUILD_TIMEOUT = 900.0
# The wheels installed into one site-packages tree, in each wheelhouse's directory.
SITE_ARCHIVE = "site-packages.tar.gz"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Wheelhouse:
    """``version``: the project's; ``sha256``: over the wheels' names and contents (two
    builds of the same source and pins compare equal: the project wheel is built
    reproducibly, see SOURCE_DATE_EPOCH); ``files``: the wheels, sorted by name;
    ``site_packages``: every wheel installed into one site-packages tree, byte-compiled,
    as a gzip'd tar (what a machine extracts into its venv)."""

    version: str
    sha256: str
    files: tuple[Path, ...]
    site_packages: Path


def cache_root() -> Path:
    configured = os.environ.get("PULUMI_WASMCLOUD_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "pulumi-wasmcloud"


def host_wheelhouse(progress: Progress | None = None) -> Wheelhouse:
    """The wheelhouse of the installed project, built the first time (minutes: progress
    says what it is doing) and taken from the cache afterwards."""
    return build_wheelhouse(source_tree(), cache_root(), progress)


def source_tree() -> Path:
    """The source tree this provider runs from (an editable or in-place install: the
    tree holding the running ``pulumi_wasmcloud`` package and its pyproject.toml)."""
    import pulumi_wasmcloud

    where = Path(pulumi_wasmcloud.__file__).resolve().parent.parent
    pyproject = where / "pyproject.toml"
    if pyproject.is_file():
        with contextlib.suppress(tomllib.TOMLDecodeError, KeyError, TypeError):
            if tomllib.loads(pyproject.read_text())["project"]["name"] == DISTRIBUTION:
                return where
    raise ProvisionError(
        f"the host agent's wheelhouse is built from {DISTRIBUTION}'s source tree, and the "
        f"running {DISTRIBUTION} ({where}) is not in one; install it from a clone "
        "(`pip install -e .`, as scripts/bootstrap.sh does)"
    )


def project_version(source: Path) -> str:
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    version = project.get("version")
    if not isinstance(version, str):
        raise ProvisionError(f"{source}/pyproject.toml: project.version is not a string")
    return version


def source_files(source: Path) -> list[Path]:
    """The files of ``source`` that go into the project's wheel, relative, sorted."""
    found = [Path(name) for name in SOURCE_FILES if (source / name).is_file()]
    for package in SOURCE_PACKAGES:
        for path in (source / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.append(path.relative_to(source))
    return sorted(found)


def source_sha256(source: Path) -> str:
    digest = hashlib.sha256()
    for relative in source_files(source):
        digest.update(str(relative).encode() + b"\0")
        digest.update(hashlib.sha256((source / relative).read_bytes()).digest())
    return digest.hexdigest()


# Machines may run any patch release of this Python's minor version (Debian 12 has
# 3.11.2), and some dependencies differ by it (redis needs async-timeout before 3.11.3).
_PATCH_RELEASES = range(40)


def _applies(requirement: Requirement, **environment: str) -> bool:
    """Whether ``requirement`` applies here (no extra asked for), with ``environment``
    overriding what its marker reads."""
    if requirement.marker is None:
        return True
    return requirement.marker.evaluate({"extra": "", **environment})


def _applies_to_this_minor(requirement: Requirement) -> bool:
    major, minor = sys.version_info[:2]
    return any(
        _applies(requirement, python_full_version=f"{major}.{minor}.{patch}")
        for patch in _PATCH_RELEASES
    )


def dependency_pins(source: Path) -> list[str]:
    """What pip fetches for the project's base dependencies and everything they need:
    ``name==version`` at the versions installed here (the pyproject's pins among them),
    plus, for what only another patch release of this Python needs (so is not installed
    here), the requirement as its dependant states it."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    pins: dict[str, str] = {}
    elsewhere: dict[str, str] = {}
    pending = [_requirement(text, "pyproject.toml") for text in project.get("dependencies", [])]
    for requirement in pending:
        if requirement.specifier and not any(s.operator == "==" for s in requirement.specifier):
            raise ProvisionError(
                f"pyproject.toml: dependency {requirement} is not pinned (name==version)"
            )
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in pins or not _applies_to_this_minor(requirement):
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if not _applies(requirement):
                elsewhere[name] = f"{name}{requirement.specifier}"
                continue
            raise ProvisionError(
                f"{requirement.name}, which the host agent needs, is not installed beside "
                f"the provider; install {DISTRIBUTION} with its dependencies"
            ) from None
        if not requirement.specifier.contains(distribution.version, prereleases=True):
            raise ProvisionError(
                f"{requirement.name} {distribution.version} is installed beside the provider "
                f"but {requirement} is required; reinstall {DISTRIBUTION}"
            )
        pins[name] = distribution.version
        elsewhere.pop(name, None)
        for text in distribution.requires or []:
            pending.append(_requirement(text, f"{name}'s metadata"))
    return sorted(
        [f"{name}=={version}" for name, version in pins.items()]
        + [spec for name, spec in elsewhere.items() if name not in pins]
    )


def _requirement(text: str, where: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as e:
        raise ProvisionError(f"{where}: {text!r} is not a requirement: {e}") from None


def wheel_target() -> str:
    """What the wheels are built for: this Python and platform (``cp311-linux_x86_64``)."""
    return f"cp{sys.version_info[0]}{sys.version_info[1]}-{sysconfig.get_platform()}"


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def build_wheelhouse(source: Path, cache: Path, progress: Progress | None = None) -> Wheelhouse:
    """The wheelhouse for ``source`` (a project tree), from ``cache`` or built into it."""
    say = progress or (lambda _: None)
    # A snapshot of the source first (it may be edited while we build): what is hashed
    # is what is built. pip builds in the tree it is given, so build/ and *.egg-info go
    # into the snapshot, not the user's clone.
    with tempfile.TemporaryDirectory(prefix="wheelhouse-source-") as snapshot:
        copy = Path(snapshot)
        for relative in source_files(source):
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / relative, copy / relative)
        version = project_version(copy)
        pins = dependency_pins(copy)
        target = wheel_target()
        native = built_wheel(source, cache)
        native_id = (native.name, _file_sha256(native)) if native else None
        root = cache / "wheelhouse"
        entry = root / _key(version, source_sha256(copy), pins, target, native_id)
        if not entry.is_dir():
            root.mkdir(parents=True, exist_ok=True)
            with _locked(root / ".lock", say):
                if not entry.is_dir():
                    dependencies = _dependency_wheels(root, pins, target, say)
                    with _building(root, entry) as building:
                        say(f"wheelhouse: building {DISTRIBUTION} {version} from {source}")
                        _pip("wheel", "--no-deps", "--wheel-dir", str(building), str(copy))
                        for wheel in dependencies.iterdir():
                            _link_or_copy(wheel, building / wheel.name)
                        if native is not None:  # the native wasi:http host
                            _link_or_copy(native, building / native.name)
                        say("wheelhouse: installing the wheels into one site-packages tree")
                        lay_out_site_packages(building)
    say(f"wheelhouse: {DISTRIBUTION} {version} ready ({entry})")
    return wheelhouse_in(entry, version)


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _link_or_copy(source: Path, destination: Path) -> None:
    # Entries share the dependency wheels (hard links: an entry costs one wheel's bytes).
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def wheelhouse_in(directory: Path, version: str) -> Wheelhouse:
    """The wheelhouse of the wheels in ``directory``; its site-packages archive is laid
    out there first when it is not yet (an entry cached before there was one)."""
    files = tuple(sorted(directory.glob("*.whl")))
    archive = directory / SITE_ARCHIVE
    if not archive.is_file():
        lay_out_site_packages(directory)
    return Wheelhouse(version, wheels_sha256(files), files, archive)


def lay_out_site_packages(directory: Path) -> Path:
    """Install every wheel in ``directory`` into one site-packages tree and write it as
    ``directory/site-packages.tar.gz`` (atomically: concurrent builds write equivalent
    trees, and the last rename wins). Every wheel, whatever its marker: the wheelhouse
    holds what any patch release of this Python needs (see dependency_pins), and an extra
    backport is never imported where the standard library has it."""
    wheels = sorted(directory.glob("*.whl"))
    with tempfile.TemporaryDirectory(prefix="site-packages-") as scratch:
        site = Path(scratch) / "site-packages"
        # --no-deps: the wheels are the whole closure, pinned; --no-compile: compiled
        # below, as the machine's imports will find them.
        _pip(
            "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
            "--no-warn-script-location", "--target", str(site), *map(str, wheels),
            what=f"installing the wheels of {directory} into one site-packages tree",
        )  # fmt: skip
        # Console scripts name this Python in their #! line; services run `python -m`.
        shutil.rmtree(site / "bin", ignore_errors=True)
        _forget_wheel_paths(site)
        # Unchecked-hash .pyc files are used as they are (no source mtime to match after
        # extraction, none compiled by each machine's first import); the source paths
        # they record are relative (the import system puts the real one in tracebacks).
        # A file that does not compile (a template shipped as .py) is left to import
        # time, as pip leaves it.
        _compile_tree(site)
        descriptor, name = tempfile.mkstemp(prefix=f".{SITE_ARCHIVE}-", dir=directory)
        os.close(descriptor)
        partial = Path(name)
        try:
            _write_tree(site, partial)
            partial.chmod(0o644)
            archive = directory / SITE_ARCHIVE
            partial.rename(archive)
        finally:
            partial.unlink(missing_ok=True)
    return archive


def _compile_tree(site: Path) -> None:
    """Byte-compile ``site`` in a fresh interpreter with a fixed hash seed: a .pyc's bytes
    depend on the compiling process (the order of frozenset constants follows its string
    hash seed, marshal's back-references its objects' reference counts), and this
    long-lived process's state should not leak into what machines run. (Layouts made at
    different times still differ in bytes, as fresh clones showed; nothing relies on it.)"""
    script = (
        "import compileall, py_compile, sys; compileall.compile_dir(sys.argv[1], "
        "ddir='site-packages', quiet=2, "
        "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
    )
    try:
        subprocess.run(
            [sys.executable, "-c", script, str(site)],
            env={**os.environ, "PYTHONHASHSEED": "0"},
            capture_output=True,
            timeout=BUILD_TIMEOUT,
            check=True,
        )
    except subprocess.TimeoutExpired:
        raise ProvisionError(
            f"wheelhouse: byte-compiling {site} did not finish within {BUILD_TIMEOUT:g}s"
        ) from None
    except subprocess.CalledProcessError as failed:
        said = failed.stderr.decode(errors="replace").strip()[-3000:]
        raise ProvisionError(f"wheelhouse: byte-compiling {site} failed: {said}") from None


def _forget_wheel_paths(site: Path) -> None:
    """Drop each distribution's direct_url.json (and its RECORD line): pip records there
    the path of the wheel file it installed from, a path on this machine that would
    mean nothing on another (and make two layouts of the same wheels differ)."""
    for record in site.glob("*.dist-info/RECORD"):
        direct_url = record.parent / "direct_url.json"
        if direct_url.exists():
            direct_url.unlink()
            entry = f"{record.parent.name}/direct_url.json,"
            lines = record.read_text().splitlines(keepends=True)
            record.write_text("".join(line for line in lines if not line.startswith(entry)))


def _write_tree(tree: Path, archive: Path) -> None:
    """``tree`` as a gzip'd tar, the same bytes for the same files: sorted entries, root's
    ownership, one time (SOURCE_DATE_EPOCH) for every entry and for gzip's header, which
    names no file (it would name the temporary one)."""
    epoch = int(SOURCE_DATE_EPOCH)
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=epoch
        ) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for path in sorted(tree.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(tree)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = epoch
            if info.isfile():
                with path.open("rb") as content:
                    tar.addfile(info, content)
            else:
                tar.addfile(info)


def wheels_sha256(files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _dependency_wheels(root: Path, pins: list[str], target: str, say: Progress) -> Path:
    entry = root / f"dependencies-{_key(pins, target)}"
    if entry.is_dir():
        return entry
    with _building(root, entry) as building:
        say(f"wheelhouse: fetching {len(pins)} dependency wheels from PyPI (the first time)")
        requirements = building / "requirements.txt"
        requirements.write_text("\n".join(pins) + "\n")
        # --no-deps: the pins are the whole closure already, at the versions tested here.
        _pip("wheel", "--no-deps", "--wheel-dir", str(building), "-r", str(requirements))
        requirements.unlink()
        built = {canonicalize_name(w.name.split("-")[0]) for w in building.glob("*.whl")}
        wanted = {canonicalize_name(_requirement(p, "pins").name) for p in pins}
        missing = sorted(wanted - built)
        if missing:
            raise ProvisionError(f"wheelhouse: pip made no wheel for {', '.join(missing)}")
    return entry


def _pip(*args: str, what: str | None = None) -> None:
    environment = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    command = [sys.executable, "-m", "pip", *args]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=environment,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProvisionError(
            f"wheelhouse: `pip {args[0]}` did not finish within {BUILD_TIMEOUT:g}s"
        ) from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip())[-3000:]
        what = what or f"`pip {' '.join(args)}`"
        raise ProvisionError(f"wheelhouse: {what} failed with exit code {done.returncode}: {said}")


@contextlib.contextmanager
def _locked(path: Path, say: Progress) -> Iterator[None]:
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"wheelhouse: waiting for another build on this machine ({path})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _building(root: Path, entry: Path) -> Iterator[Path]:
    """A temporary directory beside ``entry``, renamed to it when the block completes."""
    building = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=root))
    try:
        yield building
        building.rename(entry)
    finally:
        shutil.rmtree(building, ignore_errors=True)


_WHEEL_NAME = re.compile(
    r"(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<python>[^-]+)-(?P<abi>[^-]+)"
    r"-(?P<platform>[^-]+)\.whl"
)


@dataclass(frozen=True)
class WheelNeeds:
    """What a machine needs to install a wheelhouse: a CPython of one minor version
    (``None`` when every wheel is pure Python) and an architecture (``None`` likewise)."""

    python: tuple[int, int] | None
    arch: str | None
    glibc: bool  # a manylinux wheel: musl machines (Alpine) cannot install it


def wheel_needs(names: list[str]) -> WheelNeeds:
    """From wheel file names (PEP 427 tags), pure: what the machine must be."""
    pythons: set[tuple[int, int]] = set()
    arches: set[str] = set()
    glibc = False
    for name in names:
        matched = _WHEEL_NAME.fullmatch(name)
        if matched is None:
            raise ValueError(f"{name} is not a wheel file name")
        for tag in matched["python"].split("."):
            found = re.fullmatch(r"cp(\d)(\d+)", tag)
            if found and matched["abi"] != "abi3":
                pythons.add((int(found[1]), int(found[2])))
        for platform in matched["platform"].split("."):
            if platform == "any":
                continue
            arch = re.sub(r"^(manylinux\d*(_\d+_\d+)?|musllinux_\d+_\d+|linux)_", "", platform)
            arches.add(arch)
            glibc = glibc or platform.startswith("manylinux")
    if len(pythons) > 1:
        raise ValueError(f"the wheels are for several Pythons: {sorted(pythons)}")
    if len(arches) > 1:
        raise ValueError(f"the wheels are for several architectures: {sorted(arches)}")
    return WheelNeeds(
        next(iter(pythons)) if pythons else None, next(iter(arches)) if arches else None, glibc
    )

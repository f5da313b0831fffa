"""``wasmcloud:index:Application``: a wadm manifest, put and deployed through the
controller's wadm API, with its placement in the inputs so preview shows it.

``check`` validates the manifest (path-level errors) and, when the lattice answers,
adds ``placement`` (component -> host -> instances) and ``unplaced`` computed by
``plan_placement`` on the live lattice: the controller's own function and view, so the
placement preview shows is the one ``up`` applies, and with update plans
(``--save-plan`` / ``up --plan``) a lattice that changed in between changes ``placement``
and the engine refuses. ``read`` reports what really runs, so refresh shows drift.

With ``registryUrl`` (the Lattice's registry), a component whose image is a local file
(``file://...`` or a plain path) is pushed there and deployed by digest: ``check`` reads the
file and pins ``<registry>/<app>/<component>@sha256:...`` into the manifest, so a rebuilt
component shows in preview as a changed digest and nothing else; ``up`` pushes it first.
A component image named by tag in a registry is pinned the same way, to the digest the tag
names when ``check`` runs (image_tags.py), so a new push under the same tag shows too.

With ``healthUrl`` (health.py), create/update check the deployed version: once it is
deployed, runs the manifest's images and holds its links and configs, the URL must answer
2xx within ``healthTimeoutSeconds``; if not, the version deployed before is deployed again
(or the application undeployed) and the update fails, so the engine changes nothing that
depends on it. ``read`` raises when the lattice cannot be reached: an application is never
reported gone because its lattice did not answer.

On a local lattice, create/update return only once every loopback address the manifest's
http-server links name accepts a connection (http_listeners.py), so a `curl` right after
`up` is answered; diff reports such an address refusing a deployed application as drift.
A lattice on machines is not dialled from the Pulumi host: there `up` returns once the
application is deployed and its links stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from host_agent.lattice.wadm_types import StatusType
from host_agent.model.issues import ManifestError
from host_agent.model.loader import load_manifest, parse_manifest
from host_agent.model.manifest import (
    DEFAULT_LINK_NAME,
    VERSION_ANNOTATION,
    ConfigProperty,
    Manifest,
)
from host_agent.model.naming import config_name
from pulumi_wasmcloud.provider.engine_log import EngineLog
from pulumi_wasmcloud.provider.handlers import (
    Checked,
    Created,
    Diff,
    InputError,
    ProviderSettings,
    changed_keys,
    nats_url_required,
)
from pulumi_wasmcloud.provider.health import Answer, HealthCheck, check_health_inputs, probe
from pulumi_wasmcloud.provider.http_listeners import (
    HttpAddress,
    accepts,
    http_addresses,
    local_lattice,
    named_source_configs,
    until_listening,
)
from pulumi_wasmcloud.provider.live import (
    CredentialsRefused,
    Lattice,
    LatticeUnreachable,
    connect,
    lattice_credentials,
    lattice_tls,
    placement_by_name,
)
from pulumi_wasmcloud.provider.values import UNKNOWN, has_unknowns

# NATS, the lattice's clients and the OCI code are imported in the functions that talk to
# a lattice or a registry: a preview of a new stack (lattice and registry not known yet)
# does neither, and every preview's plugin process would pay for them
# (tests/unit/test_provider_startup.py keeps it so).
if TYPE_CHECKING:
    from host_agent.lattice.stored_manifest import StoredManifest

REPLACE_ON = ("natsUrl", "lattice", "name")
DEPLOY_TIMEOUT = 180.0
SETTLE_TIMEOUT = 30.0
# How long hosts the state knows may take to rejoin (they reconnect to a restarted NATS
# every half second, and answer at once).
REJOIN_TIMEOUT = 60.0
DELETE_TIMEOUT = 60.0
# How long after the first "failed" status read (while our own plan places everything) an
# update believes one. wadm keeps an application's last status until its next reconcile
# publishes another, so right after a deploy the status read may still be the previous
# version's failure (the one this update fixes); a controller's round replaces it well
# within this.
FAILED_GRACE = 5.0
# Statuses read reports when it cannot ask the controller (both differ from "deployed",
# so the next diff plans a redeploy).
CONTROLLER_DOWN = "no controller answering"
LATTICE_DOWN = "lattice unreachable"
MISSING = "not in the lattice"


class ApplicationUnreadable(LatticeUnreachable):
    """Read could not reach the lattice: an error, never "the application is gone"."""

    def __init__(self, app: str, cause: LatticeUnreachable) -> None:
        RuntimeError.__init__(self, f"cannot read application {app}: {cause}")


# -- local components pushed to the lattice's registry ----------------------------------


@dataclass(frozen=True)
class LocalArtifact:
    """A local component file as the OCI artifact it is pushed as: wasmCloud's layout
    (layout.py), with a config whose ``created`` is fixed so the same bytes always give
    the same manifest digest (a timestamp would change the digest on every preview)."""

    layer: bytes
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        from host_agent.oci.client import sha256_digest  # see the note on imports above

        return sha256_digest(self.manifest)

    @classmethod
    def of(cls, data: bytes) -> LocalArtifact:
        from host_agent.oci import layout  # see the note on imports above
        from host_agent.oci.client import Descriptor, component_manifest, sha256_digest

        layer_digest = sha256_digest(data)
        config = json.dumps(
            {
                "created": "1970-01-01T00:00:00Z",  # reproducible, like SOURCE_DATE_EPOCH=0
                "architecture": "wasm",
                "os": "wasip2",
                "layerDigests": [layer_digest],
            },
            separators=(",", ":"),
        ).encode()
        manifest = component_manifest(
            Descriptor(layout.WASM_CONFIG, sha256_digest(config), len(config)),
            Descriptor(layout.WASM_LAYER, layer_digest, len(data)),
        )
        return cls(data, config, manifest)


def local_component_path(image: str) -> Path | None:
    """The file a component image names (``file://path`` or a plain path), or None for a
    registry reference."""
    parsed = urlparse(image)
    if parsed.scheme == "file":
        return Path(parsed.netloc + parsed.path)
    if "://" in image:
        return None
    if image.startswith(("/", "./", "../", "~")) or Path(image).is_file():
        return Path(image).expanduser()
    return None


def registry_address(url: Any) -> str | None:
    """``http://127.0.0.1:5000`` -> ``127.0.0.1:5000`` (the registry part of a reference)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    return urlparse(url).netloc or None


def repository_for(app: str, component: str) -> str:
    """``<app>/<component>``, lowercased to what OCI repository names allow."""

    def clean(part: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", part.lower()).strip("-") or "component"

    return f"{clean(app)}/{clean(component)}"


def pin_local_components(
    manifest: dict[str, Any], registry: str
) -> tuple[dict[str, Any], dict[str, str], list[InputError]]:
    """The manifest with each local component image replaced by its digest reference in
    ``registry``; {reference: file} to push; refusals naming the image."""
    from host_agent.host.artifacts import ArtifactError, check_component  # reads files

    pinned: dict[str, Any] = json.loads(json.dumps(manifest))
    pushes: dict[str, str] = {}
    failures: list[InputError] = []
    app = str(pinned.get("metadata", {}).get("name", "app"))
    for index, component in enumerate(pinned.get("spec", {}).get("components", [])):
        props = component.get("properties") or {}
        image = props.get("image")
        if component.get("type") == "capability" or not isinstance(image, str):
            continue
        path = local_component_path(image)
        if path is None:
            continue
        where = f"manifest.spec.components[{index}].properties.image"
        try:
            data = path.read_bytes()
            check_component(data, str(path))
        except OSError as exc:
            failures.append(InputError(where, f"cannot read component file {path}: {exc.strerror}"))
            continue
        except ArtifactError as exc:
            failures.append(InputError(where, str(exc)))
            continue
        repository = repository_for(app, str(component.get("name", "component")))
        reference = f"{registry}/{repository}@{LocalArtifact.of(data).digest}"
        props["image"] = reference
        pushes[reference] = str(path)
    return pinned, pushes, failures


async def push_local_components(pushes: dict[str, str], log: EngineLog) -> None:
    """Push each local component to the lattice's registry under the digest check pinned;
    a file that changed since then is refused (its digest would not match the plan)."""
    from host_agent.oci import (  # see the note on imports above
        ImageReference,
        RegistryError,
        layout,
    )
    from host_agent.oci.client import RegistrySession

    for reference, file in sorted(pushes.items()):
        registry, _, rest = reference.partition("/")
        repository, _, digest = rest.partition("@")
        data = await asyncio.to_thread(Path(file).read_bytes)
        artifact = LocalArtifact.of(data)
        if artifact.digest != digest:
            raise RuntimeError(
                f"{file} changed since the plan (it is now {artifact.digest}, not {digest}); "
                "run `pulumi up` again; nothing was deployed"
            )
        target = ImageReference(registry, repository, None, digest)
        try:
            async with RegistrySession(target, insecure=True, credentials=None) as session:
                await session.put_blob(artifact.layer, None)
                await session.put_blob(artifact.config, None)
                await session.put_manifest(artifact.manifest, layout.OCI_MANIFEST)
        except RegistryError as exc:
            raise RuntimeError(
                f"pushing {file} to the lattice's registry {registry} failed: {exc}; "
                "nothing was deployed"
            ) from None
        await log.info(f"pushed {file} as {reference}")


async def _stale_images(lattice: Lattice, manifest: Manifest) -> list[str]:
    """Components a host runs from another image than the manifest names, as
    ``<id> on <host>: <image>`` (from each host's inventory, which has the image refs)."""
    import nats.errors  # see the note on imports above

    from host_agent.lattice.client import CtlClient, CtlError

    wanted = {
        component.component_id(manifest.name): component.properties.image
        for component in manifest.spec.components
        if not component.is_capability and component.properties.image is not None
    }
    ctl = CtlClient(lattice.nc, lattice.lattice)
    stale = []
    for host_id in (await lattice.view(fresh=True)).hosts:
        try:
            inventory = await ctl.get_inventory(host_id)
        except (CtlError, nats.errors.Error):
            continue  # a host that left: placement says what is missing
        for component in inventory.get("components") or []:
            if not isinstance(component, dict):
                continue
            wid, image = component.get("id"), component.get("image_ref")
            if wid in wanted and image != wanted[wid]:
                stale.append(f"{wid} on {host_id}: {image}")
    return stale


async def _reconciling(lattice: Lattice, manifest: Manifest) -> bool:
    """Whether the controller still works on the application (its status says so)."""
    reply = await lattice.wadm.status(manifest.name)
    info = reply.status.status if reply.status else None
    return info is not None and info.type is StatusType.RECONCILING


def _wrongly_typed(inputs: dict[str, Any]) -> list[InputError]:
    """Inputs of the wrong type, by name (never read as a default: "false" is not false)."""
    failures = []
    if inputs["allowUnplaced"] is None:
        inputs["allowUnplaced"] = False
    elif not isinstance(inputs["allowUnplaced"], bool) and inputs["allowUnplaced"] is not UNKNOWN:
        failures.append(InputError("allowUnplaced", "must be true or false"))
    for field in ("natsUrl", "lattice"):
        value = inputs[field]
        if value not in (None, UNKNOWN) and not isinstance(value, str):
            failures.append(InputError(field, "must be a string"))
    credentials = inputs["credentials"]
    if credentials not in (None, "", UNKNOWN):
        if not isinstance(credentials, str):
            failures.append(InputError("credentials", "must be the text of a .creds file"))
        else:
            # brings NATS: only for credentials given (see the note on imports above)
            from host_agent.lattice.connection import CredentialsError, NatsCredentials

            try:
                NatsCredentials.from_creds(credentials, "credentials")
            except CredentialsError as exc:
                failures.append(InputError("credentials", str(exc)))
    ca = inputs["caCert"]
    if ca not in (None, "", UNKNOWN):
        from host_agent.lattice.connection import ClientTls  # brings NATS (as above)

        try:
            ClientTls(ca)
        except ValueError as exc:  # TlsConfigError too
            failures.append(InputError("caCert", str(exc)))
    return failures


def _instances(counts: dict[str, int]) -> str:
    """``{"counter": 3}`` as ``counter x3``, for messages."""
    return ", ".join(f"{name} x{count}" for name, count in sorted(counts.items()))


def content_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def choose_version(manifest: dict[str, Any], stored: StoredManifest | None) -> tuple[str, bool]:
    """(version to deploy, whether it must be put first). wadm refuses to overwrite a
    version, so changed content under an unchanged version gets ``<version>+<hash>``."""
    given = manifest.get("metadata", {}).get("annotations", {}).get(VERSION_ANNOTATION)
    digest = content_hash(manifest)
    candidates = [given, f"{given}+{digest}"] if given else [f"pulumi-{digest}"]
    existing = stored.manifests if stored else {}
    for version in candidates:
        if version not in existing:
            return version, True
        if _same_content(existing[version], manifest, version):
            return version, False
    raise InputError("manifest", f"versions {candidates} of this app already hold other content")


def _same_content(stored: dict[str, Any], manifest: dict[str, Any], version: str) -> bool:
    def strip(data: dict[str, Any]) -> dict[str, Any]:
        data = json.loads(json.dumps(data))
        data.get("metadata", {}).get("annotations", {}).pop(VERSION_ANNOTATION, None)
        return data

    return strip(stored) == strip(manifest)


def _with_version(manifest: dict[str, Any], version: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(manifest))
    data.setdefault("metadata", {}).setdefault("annotations", {})[VERSION_ANNOTATION] = version
    return data


class ApplicationResource:
    secrets: frozenset[str] = frozenset({"credentials", "clientTls"})

    def __init__(self, log: EngineLog, settings: ProviderSettings) -> None:
        self.log = log
        self.settings = settings

    def _connect(self, state: dict[str, Any]) -> AbstractAsyncContextManager[Lattice]:
        """The lattice ``state`` names, as the lattice's tooling user (``credentials``, a
        secured local lattice's output) or else the provider's ``wasmcloud:credentials``."""
        return connect(
            str(state["natsUrl"]),
            str(state["lattice"]),
            lattice_credentials(state, self.settings),
            lattice_tls(state),
        )

    # check ---------------------------------------------------------------------------
    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked:
        failures: list[InputError] = []
        manifest: Manifest | None = None
        given, path = news.get("manifest"), news.get("manifestPath")
        if given is not None and path is not None:
            failures.append(InputError("manifest", "give manifest or manifestPath, not both"))
        elif given is None and path is None:
            failures.append(
                InputError("manifest", "required: a wadm manifest (dict) or manifestPath")
            )
        elif has_unknowns(given) or path is UNKNOWN:
            pass  # built from outputs not known yet; checked again when they are
        elif given is None and not isinstance(path, str):
            failures.append(InputError("manifestPath", "must be a string: a file's path"))
        else:
            try:
                manifest = (
                    parse_manifest(given) if given is not None else load_manifest(str(path))
                ).manifest
            except ManifestError as exc:
                field = "manifest" if given is not None else "manifestPath"
                failures += [
                    InputError(f"{field}.{i.path}" if i.path else field, str(i)) for i in exc.issues
                ]
        inputs: dict[str, Any] = {
            "natsUrl": news.get("natsUrl"),
            "lattice": news.get("lattice") or "default",
            "credentials": news.get("credentials"),  # the lattice's tooling user, if secured
            "caCert": news.get("caCert"),  # the CA of its NATS's certificate, with TLS
            "clientTls": news.get("clientTls"),  # a lattice on machines' tooling pair + CA
            "allowUnplaced": news.get("allowUnplaced", False),
            "manifest": manifest.to_data()
            if manifest
            else (given if given is not None else UNKNOWN),
            "name": manifest.name if manifest else UNKNOWN,
            "status": StatusType.DEPLOYED.value,  # desired; read reports the truth
        }
        if path is not None:
            inputs["manifestPath"] = path
        registry = news.get("registryUrl")
        if registry is not None:
            inputs["registryUrl"] = registry
        address = registry_address(registry)
        if manifest is not None and address is not None:
            pinned, pushes, refused = pin_local_components(inputs["manifest"], address)
            failures += refused
            if pushes:
                manifest = parse_manifest(pinned).manifest
                inputs["manifest"] = manifest.to_data()
                inputs["localComponents"] = pushes
        elif registry not in (None, "", UNKNOWN) and address is None:
            failures.append(InputError("registryUrl", "must be an http:// or https:// URL"))
        if manifest is not None and registry is not UNKNOWN and not failures:
            # A tag can move: pin what it names now, so a new push under the same tag is
            # an image change in preview (image_tags.py). Skipped while the Lattice's
            # registry is not known yet: it decides how that registry is reached.
            from pulumi_wasmcloud.provider.image_tags import pin_tagged_images  # OCI code

            pinned, refused = await pin_tagged_images(inputs["manifest"], address, os.environ)
            failures += refused
            if pinned is not inputs["manifest"] and not refused:
                manifest = parse_manifest(pinned).manifest
                inputs["manifest"] = manifest.to_data()
        failures += _wrongly_typed(inputs)
        failures += check_health_inputs(inputs, news)
        if not inputs["natsUrl"]:
            failures.append(nats_url_required())
        # Plan only where the lattice is known: an address or a lattice name that is another
        # resource's output in preview would otherwise be planned as the literal "<unknown>".
        where = [inputs[k] for k in ("natsUrl", "lattice", "credentials", "caCert", "clientTls")]
        if manifest is not None and not failures and not has_unknowns(where):
            await self._plan_into(inputs, manifest)
        return Checked(inputs, failures)

    async def _plan_into(self, inputs: dict[str, Any], manifest: Manifest) -> None:
        try:
            async with self._connect(inputs) as lattice:
                await self._await_hosts(lattice)
                plan, names = await lattice.plan(manifest)
        except CredentialsRefused as exc:
            await self.log.warn(str(exc))  # preview says it now; up would fail on it
            return
        except LatticeUnreachable:
            return  # no placement to show; create/update will say what is wrong
        inputs["placement"] = placement_by_name(plan, names)
        inputs["unplaced"] = plan.unplaced()
        if plan.unplaced():
            what = _instances(plan.unplaced())
            await self.log.warn(
                f"{manifest.name}: cannot place {what}: {'; '.join(plan.problems())}"
                + (
                    ""
                    if inputs["allowUnplaced"]
                    else " (up will fail; set allowUnplaced to deploy anyway)"
                )
            )

    # diff ----------------------------------------------------------------------------
    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        changed = changed_keys(
            olds,
            news,
            ("natsUrl", "lattice", "name", "allowUnplaced", "credentials", "caCert", "clientTls"),
        )
        for key in ("credentials", "caCert", "clientTls"):
            if key in changed and not (olds.get(key) or news.get(key)):
                del changed[key]  # none before, none now (a plain lattice's "")
        if olds.get("manifest") != news.get("manifest"):
            changed["manifest"] = (olds.get("manifest"), news.get("manifest"))
        # Compare with the lattice as it runs now, not as the last update left it, so a
        # plain `pulumi up` repairs drift (a hand-scaled component, a dead controller)
        # without needing --refresh first.
        try:
            live = await self.read(id, olds) if not changed else olds
        except CredentialsRefused:
            raise
        except LatticeUnreachable:
            # Read raises (refresh must not take an unreachable lattice for a deleted
            # application), but a diff plans: the update that brings the lattice back
            # (the Lattice resource restarts its NATS) redeploys the application.
            live = {**olds, "status": LATTICE_DOWN}
        if live is None:
            live = {**olds, "status": MISSING, "placement": {}}
        if "placement" in news:
            changed |= placement_changes(live.get("placement") or {}, news["placement"])
        if live.get("status") not in (None, StatusType.DEPLOYED.value):
            changed["status"] = (live.get("status"), StatusType.DEPLOYED.value)
        if not changed and live.get("status") == StatusType.DEPLOYED.value:
            refused = await self._refused_now(olds, live)
            if refused:
                shown = f"deployed, but nothing listens on {', '.join(refused)}"
                changed["status"] = (shown, StatusType.DEPLOYED.value)
        return Diff(changed, [k for k in REPLACE_ON if k in changed])

    # create / update -----------------------------------------------------------------
    async def create(self, inputs: dict[str, Any], preview: bool) -> Created:
        outputs = await self._apply(inputs, preview)
        return Created(str(inputs.get("name")) if not preview else "", outputs)

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]:
        return await self._apply(news, preview)

    async def _apply(self, inputs: dict[str, Any], preview: bool) -> dict[str, Any]:
        if preview:
            await self._preview_health(inputs)
            return {**inputs, "version": UNKNOWN, "status": UNKNOWN}
        import nats.errors  # see the note on imports above

        from host_agent.lattice.wadm import WadmError

        manifest = parse_manifest(inputs["manifest"]).manifest
        async with self._connect(inputs) as lattice:
            await self._await_hosts(lattice)
            if inputs.get("unplaced"):
                # Check planned before this update ran the steps it depends on: a Host
                # this update restarts or creates was not in the lattice then. Plan again
                # on the lattice as it is now, and refuse only what still cannot go.
                plan, names = await lattice.plan(manifest, fresh=True)
                inputs = {
                    **inputs,
                    "placement": placement_by_name(plan, names),
                    "unplaced": plan.unplaced(),
                }
            if inputs.get("unplaced") and not inputs["allowUnplaced"]:
                raise InputError(
                    "manifest",
                    f"cannot place {_instances(inputs['unplaced'])} on the lattice's hosts; "
                    "add hosts whose labels match the spreads, change the spread "
                    "requirements, or set allowUnplaced: true. Nothing was deployed",
                )
            await push_local_components(dict(inputs.get("localComponents") or {}), self.log)
            try:
                stored = await _stored(lattice, manifest.name)
            except nats.errors.NoRespondersError:
                raise RuntimeError(
                    f"no controller answers the wadm API of lattice {inputs['lattice']} at "
                    f"{inputs['natsUrl']}: start one (the Lattice resource runs it, or "
                    "`wasmcloud-controller`), then run `pulumi up` again; nothing was changed"
                ) from None
            version, put = choose_version(inputs["manifest"], stored)
            if put:
                try:
                    await lattice.wadm.put(_with_version(inputs["manifest"], version))
                except WadmError as exc:
                    raise InputError("manifest", f"the controller refused it: {exc}") from None
            deployed = await lattice.wadm.deploy(manifest.name, version)
            if deployed.result != "acknowledged":
                raise RuntimeError(f"deploy of {manifest.name} {version}: {deployed.message}")
            status = await self._wait(lattice, manifest, bool(inputs["allowUnplaced"]))
            planned = inputs.get("placement")
            placement = await self._settle(lattice, manifest, planned, status)
            check = HealthCheck.of(inputs)
            if check is not None:
                await self._until_wired(lattice, manifest)
                answer = await self._probe(manifest.name, version, check)
                if not answer.ok:
                    previous = stored.deployed_version if stored else None
                    outcome = await self._roll_back(
                        lattice, manifest, version, put, previous, check
                    )
                    raise RuntimeError(
                        f"{manifest.name}: version {version} failed its health check: "
                        f"{check.url} did not answer 2xx within {check.timeout:.0f} s (last "
                        f"answer: {answer}); {outcome}. Resources that depend on "
                        f"{manifest.name} were not changed; fix the version (or healthUrl) "
                        "and run `pulumi up` again"
                    )
            await self._until_listening(lattice, inputs, manifest, placement)
        if planned is not None and status == StatusType.DEPLOYED.value and planned != placement:
            raise RuntimeError(
                f"{manifest.name}: the controller placed {placement}, not the planned {planned}; "
                "the lattice changed during the update; run `pulumi up` again"
            )
        return {**inputs, "version": version, "status": status, "placement": placement}

    # http-server listeners ------------------------------------------------------------
    async def _until_listening(
        self,
        lattice: Lattice,
        inputs: dict[str, Any],
        manifest: Manifest,
        placement: dict[str, dict[str, int]],
    ) -> None:
        """On a local lattice, wait (at most DEPLOY_TIMEOUT) until every loopback address
        the manifest's http-server links name accepts a TCP connection: the provider opens
        it when it takes the link, a moment after the controller stored it, and a `curl`
        right after `up` must find it open. A lattice on machines (SSH, EC2) is not
        dialled from here: there `up` returns once the app is deployed and its links
        stored, as before (http_listeners.py says why)."""
        if not local_lattice(inputs.get("natsUrl"), inputs.get("clientTls")):
            return
        named = await _named_configs(lattice, named_source_configs(manifest))
        addresses, refusals = http_addresses(manifest, placement, named)
        if refusals:
            raise RuntimeError(
                f"{manifest.name}: {'; '.join(refusals)}. It is deployed, but nothing "
                "answers HTTP there; fix the link and run `pulumi up` again"
            )
        app = manifest.name
        shown = -1

        async def progress(pending: list[HttpAddress], waited: float) -> None:
            nonlocal shown
            if int(waited) > shown:
                shown = int(waited)
                listed = ", ".join(f"{a.address} ({a.provider})" for a in pending)
                await self.log.info(
                    f"{app}: waiting for the http-server to listen on {listed}: {shown} s of "
                    f"{DEPLOY_TIMEOUT:.0f}"
                )

        refused = await until_listening(addresses, DEPLOY_TIMEOUT, progress)
        if refused:
            sentences = [_not_listening(a, placement) for a in refused]
            raise RuntimeError(f"{app}: {'; '.join(sentences)}")

    async def _refused_now(self, state: dict[str, Any], live: dict[str, Any]) -> list[str]:
        """The http-server addresses of a deployed application on a local lattice that
        refuse a connection now (one attempt each): drift a plain `up` repairs, as when a
        restarted host's provider has not taken its link yet and the controller already
        placed everything again (the update waits for them)."""
        if not local_lattice(state.get("natsUrl"), state.get("clientTls")):
            return []
        manifest = parse_manifest(state["manifest"]).manifest
        names = named_source_configs(manifest)
        named: dict[str, dict[str, str]] = {}
        if names:
            try:
                async with self._connect(state) as lattice:
                    named = await _named_configs(lattice, names)
            except LatticeUnreachable:
                return []  # the diff says so already
        addresses, _ = http_addresses(manifest, live.get("placement") or {}, named)
        return [a.address for a in addresses if not await accepts(a.host, a.port)]

    # health check and rollback -------------------------------------------------------
    async def _preview_health(self, inputs: dict[str, Any]) -> None:
        url, name = inputs.get("healthUrl"), inputs.get("name")
        if url is None:
            return
        app = name if isinstance(name, str) else "the application"
        shown = url if isinstance(url, str) else "its health URL (known once its inputs are)"
        seconds = inputs.get("healthTimeoutSeconds")
        within = f"{seconds} s" if isinstance(seconds, int) else "its healthTimeoutSeconds"
        await self.log.note(
            f"{app}: once deployed, up waits up to {within} for {shown} to answer 2xx; if it "
            "does not, up rolls back to the version deployed now (undeploys it if there is "
            "none) and stops: nothing that depends on it changes"
        )

    async def _probe(self, app: str, version: str, check: HealthCheck) -> Answer:
        """GET the health URL until it answers 2xx (or the timeout), showing progress."""
        await self.log.info(f"{app}: waiting for {check.url} (2xx)")
        shown = -1

        async def progress(answer: Answer, waited: float) -> None:
            nonlocal shown
            if int(waited) > shown:
                shown = int(waited)
                await self.log.info(
                    f"{app}: waiting for {check.url} (2xx): {answer}, {shown} s of "
                    f"{check.timeout:.0f}"
                )

        answer, waited = await probe(check, progress)
        if answer.ok:
            await self.log.note(
                f"{app}: {check.url} answered {answer.status} after {waited:.1f} s (version "
                f"{version})"
            )
        return answer

    async def _roll_back(
        self,
        lattice: Lattice,
        manifest: Manifest,
        failed: str,
        put: bool,
        previous: str | None,
        check: HealthCheck,
    ) -> str:
        """Put the application back where it was before this update; say how that went
        (the second half of the error sentence). The failed version is deleted from the
        controller when this update put it there, so the lattice holds what it held before
        and the fixed version can be deployed under the same version name."""
        import nats.errors  # see the note on imports above

        from host_agent.lattice.wadm import WadmError

        app = manifest.name
        if previous == failed:
            return (
                f"version {failed} was already deployed before this update, so there is no "
                "earlier version to roll back to; it stays deployed"
            )
        if previous is None:
            # Nothing was deployed before (a create, or an application undeployed by
            # hand): going back is undeploying. A failed create leaves no state, so a
            # deployed application would be orphaned.
            await self.log.warn(f"{app}: undeploying version {failed}")
            try:
                if put:
                    await lattice.wadm.delete(app, failed)  # a deployed version: undeploys
                else:
                    await lattice.wadm.undeploy(app)
                await self._until_stopped(lattice, manifest)
            except (RuntimeError, WadmError, nats.errors.Error) as exc:
                return f"no earlier version to roll back to, and undeploying it failed: {exc}"
            return f"no earlier version to roll back to, so {app} was undeployed"
        await self.log.warn(f"{app}: rolling back to version {previous}")
        try:
            reply = await lattice.wadm.get(app, previous)
            if reply.manifest is None:
                raise RuntimeError(f"the controller no longer holds version {previous}")
            earlier = parse_manifest(reply.manifest).manifest
            deployed = await lattice.wadm.deploy(app, previous)
            if deployed.result != "acknowledged":
                raise RuntimeError(deployed.message)
            status = await self._wait(lattice, earlier, allow_unplaced=True)
            await self._settle(lattice, earlier, None, status)
            await self._until_wired(lattice, earlier)
            if put:
                await lattice.wadm.delete(app, failed)
        except (RuntimeError, WadmError, ManifestError, nats.errors.Error) as exc:
            return f"rolling back to version {previous} failed too: {exc}"
        answer = await self._probe(app, previous, check)
        if answer.ok:
            return f"rolled back to version {previous}, which answers 2xx again"
        return (
            f"rolled back to version {previous}, but it does not answer 2xx either (last "
            f"answer: {answer})"
        )

    async def _until_stopped(self, lattice: Lattice, manifest: Manifest) -> None:
        deadline = time.monotonic() + DELETE_TIMEOUT
        while True:
            running = await lattice.running(manifest, fresh=True)
            if not any(running.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(still_running(manifest.name, running, DELETE_TIMEOUT))
            await asyncio.sleep(0.25)

    async def _until_wired(self, lattice: Lattice, manifest: Manifest) -> None:
        """Wait (at most SETTLE_TIMEOUT) until the lattice holds the manifest's links and
        configs. A version that changes only links or config keeps the placement and
        images, and "deployed" may still be the previous version's status, so without
        this the health check could be answered by the previous version."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            pending = await _unwired(lattice, manifest)
            if not pending:
                return
            if time.monotonic() > deadline:
                await self.log.warn(
                    f"{manifest.name}: after {SETTLE_TIMEOUT:.0f} s the lattice still differs "
                    f"from the manifest ({'; '.join(pending)}); checking its health anyway"
                )
                return
            await asyncio.sleep(0.25)

    async def _await_hosts(self, lattice: Lattice) -> None:
        """Wait until every host the stack's state holds for this lattice, and whose
        process runs, answers again: after a restart (of NATS, say) hosts take a few
        seconds to reconnect, and a plan made before that would see no hosts."""
        started = time.monotonic()
        shown = -1
        while True:
            expected = [
                h for h in self.settings.hosts_of(lattice.url, lattice.lattice) if h.running()
            ]
            if not expected:
                return
            view = await lattice.view(fresh=shown >= 0)
            missing = [h.name for h in expected if h.id not in view.hosts]
            if not missing:
                return
            waited = time.monotonic() - started
            listed = ", ".join(missing)
            if waited > REJOIN_TIMEOUT:
                raise RuntimeError(
                    f"{len(missing)} host(s) of lattice {lattice.lattice} did not rejoin within "
                    f"{REJOIN_TIMEOUT:.0f} s: {listed}. Their processes run but do not answer "
                    f"on {lattice.url}: check their logs (host-<name>.log in the Host's "
                    "stateDir) and that NATS is reachable, then run `pulumi up` again; "
                    "nothing was changed"
                )
            if int(waited) > shown:
                shown = int(waited)
                await self.log.info(
                    f"waiting for {len(missing)} host(s) to rejoin the lattice ({listed}): "
                    f"{shown} s"
                )

    async def _settle(
        self, lattice: Lattice, manifest: Manifest, planned: Any, status: str
    ) -> dict[str, dict[str, int]]:
        """What runs, once it matches the plan or SETTLE_TIMEOUT passed. "deployed" can be
        a status an earlier controller published (a restarted one takes over within its
        lease), so what the hosts run is the proof, not the status alone."""
        if status != StatusType.DEPLOYED.value:
            return await lattice.running(manifest, fresh=True)
        started = time.monotonic()
        while True:
            # The status first, then what runs: a "deployed" read before the hosts' reading
            # is not older than it. Between an old image's stop and the new one's start the
            # controller reports reconciling: fewer instances then are the move under way,
            # not a changed plan.
            reconciling = await _reconciling(lattice, manifest)
            placement = await lattice.running(manifest, fresh=True)
            # A new image under the same placement (a rebuilt component, a moved tag):
            # "deployed" may still be the status of the previous version, so wait for the
            # hosts to run it. The controller stops the old image, then the hosts pull and
            # compile the new one, which takes as long as a deploy may.
            stale = await _stale_images(lattice, manifest)
            if (planned is None or placement == planned) and not stale:
                return placement
            waited = time.monotonic() - started
            if stale and waited > DEPLOY_TIMEOUT:
                raise RuntimeError(
                    f"{manifest.name}: after {DEPLOY_TIMEOUT:.0f} s hosts still run "
                    f"{', '.join(stale)}; see the hosts' logs, then run `pulumi up` again"
                )
            if not stale and (
                waited > DEPLOY_TIMEOUT or (waited > SETTLE_TIMEOUT and not reconciling)
            ):
                return placement
            await asyncio.sleep(0.25)

    async def _wait(self, lattice: Lattice, manifest: Manifest, allow_unplaced: bool) -> str:
        deadline = time.monotonic() + DEPLOY_TIMEOUT
        last = ""
        failure = FailureGrace(FAILED_GRACE)
        while time.monotonic() < deadline:
            reply = await lattice.wadm.status(manifest.name)
            info = reply.status.status if reply.status else None
            if info is not None:
                shown = f"{info.type.value} {info.message}".strip()
                if shown != last:
                    await self.log.info(f"{manifest.name}: {shown}")
                    last = shown
                if info.type is StatusType.DEPLOYED:
                    return info.type.value
                placeable = False
                if info.type is StatusType.FAILED:
                    # The controller plans with the same planner on the same hosts: when
                    # it cannot place everything, our own plan says so too.
                    unplaced = (await lattice.plan(manifest))[0].unplaced()
                    placeable = not unplaced
                    if unplaced and allow_unplaced:
                        return info.type.value
                    # else: a host may still join; wait for it until the deadline
                if failure.believed(placeable, time.monotonic()):
                    raise RuntimeError(f"{manifest.name} failed to deploy: {info.message}")
            await asyncio.sleep(0.1)
        raise RuntimeError(
            f"{manifest.name} did not reach deployed in {DEPLOY_TIMEOUT:.0f}s: {last}"
        )

    # read / delete -------------------------------------------------------------------
    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        import nats.errors  # see the note on imports above

        if "manifest" not in state:
            return await self._import(id, state)
        manifest = parse_manifest(state["manifest"]).manifest
        try:
            async with self._connect(state) as lattice:
                placement = await lattice.running(manifest)
                try:
                    stored = await _stored(lattice, id)
                    reply = await lattice.wadm.status(id)
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
                    # Hosts answer but no controller does: what runs is still real drift.
                    return {**state, "status": CONTROLLER_DOWN, "placement": placement}
        except CredentialsRefused:
            raise  # not drift: the user has to give credentials, and the error says so
        except LatticeUnreachable as exc:
            # Never "gone": the engine would drop the application from the state while it
            # may well run, and a drift check would report a deletion instead of failing.
            raise ApplicationUnreadable(id, exc) from None
        if stored is None:
            return None  # deleted behind our back
        info = reply.status.status if reply.status else None
        status = info.type.value if info else StatusType.UNDEPLOYED.value
        if stored.deployed_version is None:
            status = StatusType.UNDEPLOYED.value
        return {
            **state,
            "version": stored.deployed_version,
            "status": status,
            "placement": placement,
        }

    async def _import(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        """`pulumi import wasmcloud:index:Application <name> <name>`: adopt the deployed
        version of an application that already runs (natsUrl/lattice from the config)."""
        if not state.get("natsUrl"):
            raise InputError("natsUrl", "set wasmcloud:natsUrl to import an application")
        lattice_name = str(state.get("lattice") or "default")
        async with self._connect({**state, "lattice": lattice_name}) as lattice:
            stored = await _stored(lattice, id)
            deployed = stored.deployed_manifest() if stored else None
        if deployed is None:
            return None  # nothing deployed under that name: the engine says "not found"
        inputs = {
            "natsUrl": state["natsUrl"],
            "lattice": lattice_name,
            "allowUnplaced": False,
            "manifest": parse_manifest(deployed).manifest.to_data(),
        }
        return await self.read(id, inputs)

    async def delete(self, id: str, state: dict[str, Any]) -> None:
        """Delete the application from the controller and wait until no host runs any
        of it; fail, naming what still runs where, if that takes over DELETE_TIMEOUT."""
        import nats.errors  # see the note on imports above

        manifest = parse_manifest(state["manifest"]).manifest
        try:
            async with self._connect(state) as lattice:
                try:
                    await lattice.wadm.delete(id)
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    raise RuntimeError(
                        f"no controller answers the wadm API of lattice {state['lattice']} "
                        f"at {state['natsUrl']}, so {id} cannot be deleted: start one (the "
                        "Lattice resource runs it), then run the command again"
                    ) from None
                # The resource's id is the manifest's name (create), so the error names it.
                await self._until_stopped(lattice, manifest)
        except CredentialsRefused:
            raise  # the lattice runs: dropping the app from state would leave it deployed
        except LatticeUnreachable:
            return  # the lattice is gone, and the application with it


async def _named_configs(lattice: Lattice, names: list[str]) -> dict[str, dict[str, str]]:
    """The values of the named configs ``names`` the lattice holds ({} for one it does not,
    or cannot read: the host reads the same store and gets nothing either)."""
    import nats.errors  # see the note on imports above

    from host_agent.lattice.client import CtlError

    named: dict[str, dict[str, str]] = {}
    for name in names:
        try:
            named[name] = dict(await lattice.ctl.get_config(name) or {})
        except (CtlError, nats.errors.Error):
            named[name] = {}
    return named


def _not_listening(address: HttpAddress, placement: dict[str, dict[str, int]]) -> str:
    """The timeout's sentence for one address: what refuses, where to look."""
    hosts = sorted(placement.get(address.provider) or {})
    logs = " or ".join(f"host-{h}.log" for h in hosts) or "its Host's log"
    return (
        f"the http-server {address.provider} does not accept connections on "
        f"{address.address} (its link to {address.target}) {DEPLOY_TIMEOUT:.0f} s after the "
        f"application deployed. Check the http-server provider's log ({logs} "
        "in the Host's stateDir: it says whether the provider took the link, on which "
        "address, or refused it) and the link's source_config (address: a port another "
        "process holds, or a malformed value), then run `pulumi up` again"
    )


def _link_key(source: str, namespace: str, package: str, name: str | None) -> str:
    return f"{source} -({namespace}:{package}/{name or DEFAULT_LINK_NAME})->"


def wanted_wiring(
    manifest: Manifest,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """The links (by ``<source> -(<ns>:<pkg>/<name>)->``) and the configs (name -> values)
    a deployed ``manifest`` puts in the lattice, as the controller names them."""
    by_name = {c.name: c for c in manifest.spec.components}
    links: dict[str, dict[str, Any]] = {}
    configs: dict[str, dict[str, str]] = {}

    def names(given: list[ConfigProperty]) -> list[str]:
        out = []
        for config in given:
            if config.properties is None:
                out.append(config.name)
            else:
                out.append(config_name(manifest.name, config.name))
                configs[out[-1]] = dict(config.properties)
        return sorted(out)

    for component in manifest.spec.components:
        names(component.properties.config)
        for trait in component.link_traits:
            link = trait.properties
            target = by_name.get(link.target.name)
            source = component.component_id(manifest.name)
            links[_link_key(source, link.namespace, link.package, link.name)] = {
                "target": target.component_id(manifest.name) if target else link.target.name,
                "interfaces": sorted(link.interfaces),
                "source_config": names(link.effective_source_config),
                "target_config": names(link.effective_target_config),
            }
    return links, configs


class FailureGrace:
    """Whether a failure read now is to be believed: one read at least ``grace`` seconds
    after the first was. Readings without it in between do not start over: a status that
    goes from failed to reconciling and back fails the update too, once the grace is over."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.first: float | None = None

    def believed(self, failed: bool, now: float) -> bool:
        if not failed:
            return False
        if self.first is None:
            self.first = now
        return now - self.first >= self.grace


def wiring_differences(
    manifest: Manifest, live_links: list[dict[str, Any]], live_configs: dict[str, Any]
) -> list[str]:
    """What of the manifest's links and configs the lattice does not hold (yet), and the
    links from its components that the lattice holds but the manifest no longer has."""
    wanted, configs = wanted_wiring(manifest)
    ids = {c.component_id(manifest.name) for c in manifest.spec.components}
    live: dict[str, dict[str, Any]] = {}
    differences = []
    for link in live_links:
        source = str(link.get("source_id"))
        key = _link_key(
            source, str(link.get("wit_namespace")), str(link.get("wit_package")), link.get("name")
        )
        lists = ("interfaces", "source_config", "target_config")
        live[key] = {"target": link.get("target"), **{f: sorted(link.get(f) or []) for f in lists}}
        if source in ids and key not in wanted:
            differences.append(f"link {key} {link.get('target')} still in place")
    differences += [
        f"link {key} {want['target']} not in place"
        for key, want in wanted.items()
        if live.get(key) != want
    ]
    differences += [
        f"config {name} not in place"
        for name, values in configs.items()
        if live_configs.get(name) != values
    ]
    return differences


async def _unwired(lattice: Lattice, manifest: Manifest) -> list[str]:
    import nats.errors  # see the note on imports above

    from host_agent.lattice.client import CtlError

    _, configs = wanted_wiring(manifest)
    try:
        links = await lattice.ctl.get_links()
        values = {name: await lattice.ctl.get_config(name) for name in sorted(configs)}
    except (CtlError, nats.errors.Error) as exc:
        return [f"links unreadable: {exc}"]
    return wiring_differences(manifest, links, values)


async def _stored(lattice: Lattice, name: str) -> StoredManifest | None:
    from host_agent.lattice.stored_manifest import StoredManifest  # see the note on imports above

    versions = await lattice.wadm.versions(name) if name else None
    if versions is None or versions.result != "success":
        return None
    manifests = {}
    for info in versions.versions:
        reply = await lattice.wadm.get(name, info.version)
        if reply.manifest is not None:
            manifests[info.version] = reply.manifest
    deployed = next((v.version for v in versions.versions if v.deployed), None)
    return StoredManifest(manifests, deployed)


def placement_changes(
    old: dict[str, dict[str, int]], new: dict[str, dict[str, int]]
) -> dict[str, tuple[Any, Any]]:
    """Per-host changes as property paths: ``placement.counter["local-core"]: 1 => 3``."""
    changes: dict[str, tuple[Any, Any]] = {}
    for component in sorted(set(old) | set(new)):
        before, after = old.get(component, {}), new.get(component, {})
        for host in sorted(set(before) | set(after)):
            if before.get(host, 0) != after.get(host, 0):
                changes[f'placement.{component}["{host}"]'] = (
                    before.get(host, 0),
                    after.get(host, 0),
                )
    return changes


def still_running(app: str, running: dict[str, dict[str, int]], waited: float) -> str:
    """``app`` was deleted but instances remain: name them per host."""
    per_host: dict[str, list[str]] = {}
    for component, hosts in sorted(running.items()):
        for host, count in sorted(hosts.items()):
            per_host.setdefault(host, []).append(f"{component} x{count}")
    where = "; ".join(f"on {host}: {', '.join(what)}" for host, what in sorted(per_host.items()))
    return (
        f"{app} was deleted from the controller, but {waited:.0f} s later its instances "
        f"still run ({where}). Check the controller's and those hosts' logs, then run the "
        "command again"
    )

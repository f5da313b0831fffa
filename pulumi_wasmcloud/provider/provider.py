"""``WasmcloudProvider``: the engine's entry points, dispatched to one handler per type.

Each handler works on plain dicts; this class converts PropertyValues, applies the
provider-level config (``wasmcloud:natsUrl``, ``wasmcloud:lattice``) as defaults, turns
``InputError`` into check failures that name the field, and builds detailed diffs.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from pulumi.provider.experimental.provider import (
    CheckFailure,
    CheckRequest,
    CheckResponse,
    ConfigureRequest,
    ConfigureResponse,
    CreateRequest,
    CreateResponse,
    DeleteRequest,
    DiffRequest,
    DiffResponse,
    GetSchemaRequest,
    GetSchemaResponse,
    InvokeRequest,
    InvokeResponse,
    PropertyDiff,
    PropertyDiffKind,
    Provider,
    ReadRequest,
    ReadResponse,
    UpdateRequest,
    UpdateResponse,
)
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import provider_pb2_grpc

from pulumi_wasmcloud.provider.engine_log import EngineLog, current_urn
from pulumi_wasmcloud.provider.handlers import (
    Diff,
    Handler,
    InputError,
    ProviderSettings,
)
from pulumi_wasmcloud.provider.values import UNKNOWN, plain, to_props
from pulumi_wasmcloud.schema import package as schema_package
from pulumi_wasmcloud.schema.resources import resource as schema_resource
from pulumi_wasmcloud.schema.validate import Checker, Problem, check_inputs

LATTICE = "wasmcloud:index:Lattice"
HOST = "wasmcloud:index:Host"
APPLICATION = "wasmcloud:index:Application"
EC2_MACHINE = "wasmcloud:index:Ec2Machine"
# Each resource type's handler, "module:Class". The module is imported on the first
# request for its type: every preview and up starts this process anew, and a type's
# module brings what it works with (boto3 for EC2, paramiko for machines, NATS and the
# manifest model for applications), so a stack pays only for the types it uses. The
# class is built with the keyword arguments it names among ``log`` (EngineLog) and
# ``settings`` (ProviderSettings, shared by all handlers). A new type is one line here.
HANDLER_CLASSES: dict[str, str] = {
    LATTICE: "pulumi_wasmcloud.provider.lattice_resource:LatticeResource",
    HOST: "pulumi_wasmcloud.provider.host_resource:HostResource",
    APPLICATION: "pulumi_wasmcloud.provider.application_resource:ApplicationResource",
    EC2_MACHINE: "pulumi_wasmcloud.provider.ec2_machine:Ec2MachineResource",
    "wasmcloud:index:Secret": "pulumi_wasmcloud.provider.secret_resource:SecretResource",
}
# Properties that report the lattice as it runs (drift), not what the program asked for.
LIVE_PROPERTIES = frozenset({"placement", "running", "status", "converged"})
# What an imported resource's inputs are, from what read returned.
IMPORT_INPUTS = frozenset({"natsUrl", "lattice", "manifest", "allowUnplaced"})
# Inputs that take the provider's config as their default.
CONFIG_DEFAULTS = {"natsUrl": "natsUrl", "lattice": "lattice"}
# What the engine adds to every provider's inputs, beside the provider's own config.
ENGINE_PROVIDER_INPUTS = frozenset({"version", "pluginDownloadURL"})


def load_handler(type_token: str, log: EngineLog, settings: ProviderSettings) -> Handler:
    """The handler of ``type_token`` (a key of HANDLER_CLASSES), its module imported now."""
    module_name, class_name = HANDLER_CLASSES[type_token].split(":")
    handler_class = getattr(importlib.import_module(module_name), class_name)
    accepted = inspect.signature(handler_class).parameters
    given = {"log": log, "settings": settings}
    handler: Handler = handler_class(**{k: v for k, v in given.items() if k in accepted})
    return handler


class WasmcloudProvider(Provider):
    def __init__(self, engine_address: str | None = None) -> None:
        self.log = EngineLog(engine_address)
        self.settings = ProviderSettings()
        self.handlers: dict[str, Handler] = {}  # type token -> handler, as first used
        self.config: dict[str, Any] = {}

    async def get_schema(self, request: GetSchemaRequest) -> GetSchemaResponse:
        from pulumi_wasmcloud.schema.package import schema_json

        return GetSchemaResponse(schema_json())

    async def invoke(self, request: InvokeRequest) -> InvokeResponse:
        from pulumi_wasmcloud.provider.functions import invoke  # getLattice, planPlacement

        return await invoke(request, self._defaults, self.settings)

    def secrets(self, type_token: str) -> frozenset[str]:
        """What ``type_token``'s outputs keep secret: the schema's secret properties (and
        any its handler adds; tests/unit/test_schema_provider.py keeps them equal)."""
        defined = schema_resource(type_token)
        declared = defined.secrets if defined is not None else frozenset()
        return declared | self.handler(type_token).secrets

    def handler(self, type_token: str) -> Handler:
        if type_token not in self.handlers:
            if type_token not in HANDLER_CLASSES:
                known = ", ".join(sorted(HANDLER_CLASSES))
                raise ValueError(f"unknown resource type {type_token}; known: {known}")
            self.handlers[type_token] = load_handler(type_token, self.log, self.settings)
        return self.handlers[type_token]

    async def check_config(self, request: CheckRequest) -> CheckResponse:
        """The provider's config (``wasmcloud:natsUrl`` ... or an explicit provider's
        properties) against the schema: a misspelt key or a value of the wrong type is
        refused naming it, before any resource reads the config."""
        given = plain(request.new_inputs)
        config = {k: v for k, v in given.items() if k not in ENGINE_PROVIDER_INPUTS}
        checker = Checker({}, lambda value: value is UNKNOWN)
        problems = checker.properties(config, schema_package.CONFIG, "the wasmcloud provider")
        failures = [CheckFailure(p.path, p.reason) for p in problems]
        return CheckResponse(request.new_inputs, failures or None)

    async def configure(self, request: ConfigureRequest) -> ConfigureResponse:
        args = plain(request.args)
        for key in CONFIG_DEFAULTS:
            value = args.get(key) or request.variables.get(f"wasmcloud:config:{key}")
            if value:
                self.config[key] = value
        credentials = args.get("credentials") or request.variables.get(
            "wasmcloud:config:credentials"
        )
        self.settings.credentials = str(credentials) if credentials else None
        return ConfigureResponse(accept_secrets=True, supports_preview=True)

    def _remember(self, type_token: str, state: dict[str, Any] | None) -> None:
        """Note a Host the stack's state holds, so applications on its lattice wait for
        it to rejoin after a restart (see ApplicationResource)."""
        if type_token != HOST or state is None:
            return
        from pulumi_wasmcloud.provider.host_resource import known_host  # the Host handler's

        host = known_host(state)
        if host is not None:  # None: not known yet (preview of a new host)
            self.settings.remember_host(state["natsUrl"], state["lattice"], host)

    def _defaults(self, news: dict[str, Any]) -> dict[str, Any]:
        for field, key in CONFIG_DEFAULTS.items():
            if news.get(field) in (None, "") and key in self.config:
                news[field] = self.config[key]
        return news

    async def check(self, request: CheckRequest) -> CheckResponse:
        handler = self.handler(request.type)
        current_urn.set(request.urn)
        given = plain(request.new_inputs)
        # The schema's checks (names, types, required) name the property's path and the
        # type it takes; the handler's own checks (ranges, formats, what belongs together)
        # add what they find about the other properties.
        defined = schema_resource(request.type)
        problems: list[Problem] = []
        if defined is not None:
            objects = {o.token: o for o in schema_package.object_types()}
            problems = check_inputs(defined, given, objects, lambda v: v is UNKNOWN)
        typed = [CheckFailure(p.path, p.reason) for p in problems]
        news = self._defaults(given)
        try:
            checked = await handler.check(plain(request.old_inputs), news)
        except InputError as exc:  # found while checking (say, a lattice read): a failure
            failures = [*typed, CheckFailure(exc.property, exc.reason)]
            return CheckResponse(request.new_inputs, without_repeats(failures, len(typed)))
        except Exception:
            if typed:  # the handler read a value of the wrong type the schema named
                return CheckResponse(request.new_inputs, typed)
            raise
        failures = typed + [CheckFailure(f.property, f.reason) for f in checked.failures]
        return CheckResponse(
            to_props(checked.inputs, self.secrets(request.type)),
            without_repeats(failures, len(typed)) or None,
        )

    async def diff(self, request: DiffRequest) -> DiffResponse:
        handler = self.handler(request.type)
        current_urn.set(request.urn)
        olds = plain(request.old_state)
        self._remember(request.type, olds)
        diff = await handler.diff(request.resource_id, olds, plain(request.new_inputs))
        defined = schema_resource(request.type)
        return diff_response(diff, defined.replace_on_changes if defined else frozenset())

    async def create(self, request: CreateRequest) -> CreateResponse:
        handler = self.handler(request.type)
        current_urn.set(request.urn)
        created = await handler.create(plain(request.properties), request.preview)
        if not request.preview:
            self._remember(request.type, created.outputs)
        return CreateResponse(created.id, to_props(created.outputs, self.secrets(request.type)))

    async def read(self, request: ReadRequest) -> ReadResponse:
        handler = self.handler(request.type)
        current_urn.set(request.urn)
        properties = plain(request.properties)
        if not properties:  # an import: only the id is known, the config says where
            properties = self._defaults({})
        state = await handler.read(request.resource_id, properties)
        self._remember(request.type, state)
        if state is None:
            return ReadResponse()  # gone: the engine drops it from the state
        # On import there are no inputs yet: the state's own inputs become them.
        secrets = self.secrets(request.type)
        inputs = request.inputs or to_props(
            {k: v for k, v in state.items() if k in IMPORT_INPUTS}, secrets
        )
        return ReadResponse(request.resource_id, to_props(state, secrets), inputs)

    async def update(self, request: UpdateRequest) -> UpdateResponse:
        handler = self.handler(request.type)
        current_urn.set(request.urn)
        outputs = await handler.update(
            request.resource_id, plain(request.olds), plain(request.news), request.preview
        )
        if not request.preview:
            self._remember(request.type, outputs)
        return UpdateResponse(to_props(outputs, self.secrets(request.type)))

    async def delete(self, request: DeleteRequest) -> None:
        current_urn.set(request.urn)
        state = plain(request.properties)
        await self.handler(request.type).delete(request.resource_id, state)
        if request.type == HOST and isinstance(state.get("natsUrl"), str):
            self.settings.forget_host(
                state["natsUrl"], str(state.get("lattice")), request.resource_id
            )


def without_repeats(failures: list[CheckFailure], first: int) -> list[CheckFailure]:
    """``failures`` without those after the ``first`` (the schema's) about a property the
    schema's already name (the same path, or a part of it, or one it is part of)."""

    def related(a: str, b: str) -> bool:
        return a == b or any(x.startswith(y) and x[len(y)] in ".[" for x, y in ((a, b), (b, a)))

    named = [f.property for f in failures[:first]]
    return failures[:first] + [
        f for f in failures[first:] if not any(related(f.property, n) for n in named)
    ]


def diff_response(diff: Diff, replace_on: frozenset[str] = frozenset()) -> DiffResponse:
    """The engine's diff of ``diff``; a change of a property in ``replace_on`` (the
    schema's replaceOnChanges) replaces the resource, as do the handler's ``replaces``."""
    tops = sorted({p.split(".", 1)[0].split("[", 1)[0] for p in diff.changed})
    replaces = list(diff.replaces) + [t for t in tops if t in replace_on and t not in diff.replaces]
    detailed = {}
    for path, (old, new) in diff.changed.items():
        top = path.split(".", 1)[0].split("[", 1)[0]
        replace = top in replaces
        if old in (None, 0) and new not in (None, 0) and path.startswith("placement"):
            kind = PropertyDiffKind.ADD
        elif new in (None, 0) and path.startswith("placement"):
            kind = PropertyDiffKind.DELETE
        else:
            kind = PropertyDiffKind.UPDATE_REPLACE if replace else PropertyDiffKind.UPDATE
        # Live properties are compared with what the last read saw (the outputs), so
        # refreshed drift shows as e.g. `placement.counter["host"]: 5 => 3`.
        detailed[path] = PropertyDiff(kind, input_diff=top not in LIVE_PROPERTIES)
    return DiffResponse(
        changes=bool(diff.changed),
        replaces=replaces,
        diffs=tops,
        detailed_diff=detailed,
        delete_before_replace=bool(replaces),
    )


log = logging.getLogger(__name__)

# Exceptions the provider raises on purpose: their message is a sentence for the user
# (what failed, what to do). Anything else is a bug, shown with its type so it can be
# reported, and logged with its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (InputError, RuntimeError, OSError, ValueError)
# The same for exception classes of modules loaded with the handlers that use them: an
# error can only be one of them if its module is loaded, so it is not imported to check.
# ProvisionError: a machine unreachable, its key refused, a command failing (with output).
LOADED_USER_ERRORS = (("pulumi_wasmcloud.provision.connector", "ProvisionError"),)
# nats-py's timeouts: their own texts ("nats: timeout") say too little to act on.
LOADED_NO_ANSWER = (("nats.errors", "NoRespondersError"), ("nats.errors", "TimeoutError"))


def loaded_classes(names: tuple[tuple[str, str], ...]) -> tuple[type[BaseException], ...]:
    """The exception classes ``names`` (module, class) of the modules imported so far."""
    modules = ((sys.modules.get(module), name) for module, name in names)
    return tuple(getattr(module, name) for module, name in modules if module is not None)


def is_user_error(error: BaseException) -> bool:
    return isinstance(error, USER_ERRORS + loaded_classes(LOADED_USER_ERRORS))


def user_message(error: BaseException) -> str:
    """What the CLI shows for a failed call: the sentence itself, never a class repr."""
    if isinstance(error, loaded_classes(LOADED_NO_ANSWER)):
        return (
            "a request to the lattice got no answer (nothing subscribed, or no reply in "
            "time): check that the lattice's NATS, controller and hosts run (the Lattice "
            "resource's stateDir has their logs), then run the command again"
        )
    if is_user_error(error) and str(error):
        return str(error)
    return (
        f"internal error in the wasmcloud provider ({type(error).__name__}: {error}); "
        "this is a bug: please report it with the provider log (pulumi --logtostderr -v=9)"
    )


Call = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class PlainErrors(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Ends a failed call with its message as the gRPC status details.

    The SDK's experimental ``ProviderServicer`` lets exceptions escape to grpc, which
    reports them as ``Unexpected <class '...'>: message``, and the engine prints that
    verbatim; aborting with the message ourselves is what makes the CLI show a sentence.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner: Call = handler.unary_unary

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(request, context)
            except (grpc.aio.AbortError, NotImplementedError):
                # Already ended with its own status; or an optional method (Handshake,
                # List): UNIMPLEMENTED tells the engine to fall back, keep it.
                raise
            except Exception as error:
                if not is_user_error(error):
                    log.error("%s failed:\n%s", details.method, traceback.format_exc())
                await context.abort(grpc.StatusCode.UNKNOWN, user_message(error))

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def grpc_server(
    provider: Provider, version: str, args: list[str], engine_address: str | None
) -> tuple[grpc.aio.Server, int]:
    """The provider served on a loopback port (not started): the plugin's and tests' one
    way to build it, so both see the same error handling."""
    server = grpc.aio.server(interceptors=[PlainErrors()], options=_GRPC_CHANNEL_OPTIONS)
    servicer = ProviderServicer(args, version, provider, engine_address=engine_address or "")
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(servicer, server)
    return server, server.add_insecure_port("127.0.0.1:0")

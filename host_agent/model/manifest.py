"""Pydantic types of a wadm application manifest (OAM ``core.oam.dev/v1beta1``).

The shapes follow wadm-types 0.7 as shipped with wadm 0.20: the same field names, the
same places where unknown fields are refused (``extra="forbid"``) or tolerated, and the
same two link shapes. Dumping writes back only what was given (``exclude_unset``), so a
manifest round-trips without loss, including the deprecated ``target: <name>`` link form.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    Tag,
    ValidatorFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from host_agent.model.naming import normalize_name

SPREADSCALER = "spreadscaler"
DAEMONSCALER = "daemonscaler"
LINK = "link"
SCALER_TRAITS = (SPREADSCALER, DAEMONSCALER)
DEFAULT_LINK_NAME = "default"
DEFAULT_SPREAD_WEIGHT = 100
VERSION_ANNOTATION = "version"
DESCRIPTION_ANNOTATION = "description"

# wadm's counts are unsigned integers and its maps hold strings; strict types refuse
# "3" for a count and 8080 for a config value just as serde does, instead of guessing.
Count = Annotated[int, Field(strict=True, ge=0)]
StringMap = dict[str, Annotated[str, Field(strict=True)]]


class _Closed(BaseModel):
    """A wadm type declared with ``deny_unknown_fields``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Open(BaseModel):
    """A wadm type that ignores unknown fields; we keep them so nothing is lost."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ConfigProperty(_Closed):
    """Named config: with ``properties`` wadm creates it, without it must already exist."""

    name: str
    properties: StringMap | None = None


class SecretSource(_Open):
    policy: str
    key: str
    field: str | None = None
    version: str | None = None


class SecretProperty(_Open):
    name: str
    properties: SecretSource


class SharedComponentRef(_Open):
    """``application: {name, component}``: a component of another, shared application."""

    name: str
    component: str


class WorkloadProperties(_Closed):
    """``properties`` of a component or capability (same shape for both in wadm)."""

    image: str | None = None
    application: SharedComponentRef | None = None
    id: str | None = None
    config: list[ConfigProperty] = Field(default_factory=list)
    secrets: list[SecretProperty] = Field(default_factory=list)


class Spread(_Closed):
    name: str
    requirements: StringMap
    weight: Count | None = None

    @property
    def effective_weight(self) -> int:
        return DEFAULT_SPREAD_WEIGHT if self.weight is None else self.weight


class ScalerProperties(_Closed):
    """Properties of a spreadscaler or daemonscaler (``replicas`` is wadm's alias)."""

    instances: Count = Field(validation_alias=AliasChoices("instances", "replicas"))
    spread: list[Spread] = Field(default_factory=list)


class ConfigDefinition(_Open):
    config: list[ConfigProperty] = Field(default_factory=list)
    secrets: list[SecretProperty] = Field(default_factory=list)


class LinkTarget(_Open):
    name: str
    config: list[ConfigProperty] = Field(default_factory=list)
    secrets: list[SecretProperty] = Field(default_factory=list)


class LinkProperties(_Closed):
    namespace: str
    package: str
    interfaces: list[str] = Field(min_length=1)
    source: ConfigDefinition | None = None
    target: LinkTarget
    name: str | None = None
    # Deprecated spellings wadm still accepts (and warns about).
    source_config: list[ConfigProperty] | None = None
    target_config: list[ConfigProperty] | None = None

    _target_given_as_name: bool = PrivateAttr(default=False)

    @model_validator(mode="wrap")
    @classmethod
    def _accept_target_name(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # The older shape is `target: kvredis`; wadm reads it as `target: {name: kvredis}`.
        given_as_name = isinstance(data, dict) and isinstance(data.get("target"), str)
        if given_as_name:
            data = {**data, "target": {"name": data["target"]}}
        link = handler(data)
        link._target_given_as_name = given_as_name
        return link

    @model_serializer(mode="wrap")
    def _dump_target_as_given(self, handler: SerializerFunctionWrapHandler) -> Any:
        dumped = handler(self)
        if self._target_given_as_name and isinstance(dumped.get("target"), dict):
            dumped["target"] = dumped["target"]["name"]
        return dumped

    @property
    def link_name(self) -> str:
        return self.name or DEFAULT_LINK_NAME

    @property
    def effective_target_config(self) -> list[ConfigProperty]:
        """Config for the target: ``target.config`` plus the deprecated ``target_config``."""
        return [*self.target.config, *(self.target_config or [])]

    @property
    def effective_source_config(self) -> list[ConfigProperty]:
        current = self.source.config if self.source else []
        return [*current, *(self.source_config or [])]


class ScalerTrait(_Closed):
    type: Literal["spreadscaler", "daemonscaler"]
    properties: ScalerProperties


class LinkTrait(_Closed):
    type: Literal["link"]
    properties: LinkProperties


class CustomTrait(_Closed):
    """A trait wadm does not act on; accepted with a warning, kept verbatim."""

    type: str
    properties: dict[str, Any]


def _trait_kind(value: Any) -> str:
    trait_type = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if trait_type == LINK:
        return "link-trait"
    if trait_type in SCALER_TRAITS:
        return "scaler-trait"
    return "custom-trait"


# Parse trait properties by the trait's `type`, so a broken spreadscaler reports its own
# field errors instead of silently becoming a custom trait (wadm's untagged union does
# that and then rejects it with a vaguer message).
Trait = Annotated[
    Annotated[LinkTrait, Tag("link-trait")]
    | Annotated[ScalerTrait, Tag("scaler-trait")]
    | Annotated[CustomTrait, Tag("custom-trait")],
    Discriminator(_trait_kind),
]
UNION_TAGS = frozenset({"link-trait", "scaler-trait", "custom-trait"})


class Component(_Open):
    name: str
    type: Literal["component", "actor", "capability"]
    properties: WorkloadProperties
    traits: list[Trait] | None = None

    @property
    def is_capability(self) -> bool:
        return self.type == "capability"

    def component_id(self, manifest_name: str) -> str:
        """The lattice id wadm gives this component or provider."""
        if self.properties.id:
            return self.properties.id
        return f"{normalize_name(manifest_name)}-{normalize_name(self.name)}"

    @property
    def scaler_traits(self) -> list[ScalerTrait]:
        return [t for t in self.traits or [] if isinstance(t, ScalerTrait)]

    @property
    def link_traits(self) -> list[LinkTrait]:
        return [t for t in self.traits or [] if isinstance(t, LinkTrait)]

    def effective_scaler(self) -> ScalerTrait | None:
        """The scaler wadm runs: the declared one, or ``instances: 1`` for a bare capability."""
        scalers = self.scaler_traits
        if scalers:
            return scalers[0]
        if self.is_capability and self.properties.application is None:
            return ScalerTrait(type="spreadscaler", properties=ScalerProperties(instances=1))
        return None


class Policy(_Open):
    name: str
    type: str
    properties: StringMap


class Metadata(_Open):
    name: str
    annotations: StringMap
    labels: StringMap | None = None


class Specification(_Open):
    components: list[Component]
    policies: list[Policy] | None = None


class Manifest(_Closed):
    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: Metadata
    spec: Specification

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str | None:
        return self.metadata.annotations.get(VERSION_ANNOTATION)

    @property
    def description(self) -> str | None:
        return self.metadata.annotations.get(DESCRIPTION_ANNOTATION)

    def component(self, name: str) -> Component | None:
        return next((c for c in self.spec.components if c.name == name), None)

    def to_data(self) -> dict[str, Any]:
        """The manifest as plain data, exactly as it was given (no defaults added)."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return data


__all__ = [
    "DAEMONSCALER",
    "DEFAULT_LINK_NAME",
    "LINK",
    "SCALER_TRAITS",
    "SPREADSCALER",
    "UNION_TAGS",
    "Component",
    "ConfigDefinition",
    "ConfigProperty",
    "CustomTrait",
    "LinkProperties",
    "LinkTarget",
    "LinkTrait",
    "Manifest",
    "Metadata",
    "Policy",
    "ScalerProperties",
    "ScalerTrait",
    "SecretProperty",
    "SecretSource",
    "SharedComponentRef",
    "Specification",
    "Spread",
    "Trait",
    "WorkloadProperties",
]

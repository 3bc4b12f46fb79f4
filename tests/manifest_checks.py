"""Checks of the manifests `modelctl deploy --emit` writes, against models and rules that come
from installed packages or are written here, never from files copied out of other projects.

- OpenAPI models: the `kubernetes` package's models (core objects) and the KServe SDK's
  (`kserve.models`, from the `kserve` wheel installed with --no-deps: its package __init__ pulls
  a whole model server, so only `kserve/models` and `kserve/configuration.py` are loaded, which
  need only `six` and `urllib3`). `openapi_object` walks a manifest against a model class's
  `openapi_types` and `attribute_map`: each key must be a field, each value of the declared type;
  then it builds the model objects, so their own checks run (required fields: the KServe
  setters' client-side validation, the kubernetes package's pydantic models).
- Compose: `compose_file` checks the parts of the Compose Specification these files use (a
  closed table of keys with their types, the healthcheck's shape, durations, named volumes,
  `${VAR}` interpolation)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from collections.abc import Callable
from typing import Any, NoReturn

import pytest


class ManifestError(AssertionError):
    """A manifest that breaks its schema: the path to the value and what is wrong with it."""


def _fail(path: str, message: str) -> NoReturn:
    raise ManifestError(f"{path or '/'}: {message}")


# -- OpenAPI models (kubernetes, KServe) ----------------------------------------------------------

def kserve_models() -> types.ModuleType:
    """`kserve.models` from the installed `kserve` wheel without running `kserve/__init__.py`: a
    bare package module stands for `kserve`, its __path__ the installed directory."""
    if "kserve" not in sys.modules:
        spec = importlib.util.find_spec("kserve")
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("kserve is not installed (pip install --no-deps kserve)")
        package = types.ModuleType("kserve")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["kserve"] = package
    return importlib.import_module("kserve.models")


_LIST = re.compile(r"(?:list|List)\[(.+)\]")
_DICT = re.compile(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])")
_SCALARS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                         "datetime": (str,)}
# Names the KServe SDK declares without a model: Kubernetes' resource.Quantity, a string in the
# kubernetes package's models (Dict[str, str] limits and requests).
_ALIASES = {"ResourceQuantity": "str"}


def _snake(name: str) -> str:
    """The generator's module name for a class: V1HTTPGetAction → v1_http_get_action."""
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)).lower()


def _model_class(name: str, home: str) -> type | None:
    """The model class `name`, looked for first in the package of the class that names it
    (`home`: "kserve" or "kubernetes"), then in the other; None where neither has it."""
    packages = {"kserve": "kserve.models", "kubernetes": "kubernetes.client.models"}
    for package in sorted(packages, key=lambda p: p != home):
        try:  # not every model is exported by the package: its module, by the generator's naming
            module = importlib.import_module(f"{packages[package]}.{_snake(name)}")
        except ModuleNotFoundError:
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type) and hasattr(cls, "openapi_types"):
            return cls
    return None


def _typed(type_name: str, value: Any, path: str, home: str) -> Any:
    """`value` checked against the OpenAPI type `type_name`, models built from their mappings."""
    type_name = _ALIASES.get(type_name, type_name)
    if type_name == "object":  # IntOrString and free-form fields
        return value
    if (m := _LIST.fullmatch(type_name)) is not None:
        if not isinstance(value, list):
            _fail(path, f"{value!r} is not a list")
        return [_typed(m[1], v, f"{path}/{i}", home) for i, v in enumerate(value)]
    if (m := _DICT.fullmatch(type_name)) is not None:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            _fail(path, f"{value!r} is not a mapping of strings")
        return {k: _typed(m[1] or m[2], v, f"{path}/{k}", home) for k, v in value.items()}
    if type_name in _SCALARS:
        # bool is an int to Python, not to OpenAPI
        if not isinstance(value, _SCALARS[type_name]) or (isinstance(value, bool) and type_name != "bool"):
            _fail(path, f"{value!r} is not of type {type_name}")
        return value
    cls = _model_class(type_name, home)
    if cls is None:
        _fail(path, f"no model for the type {type_name} (teach _ALIASES what it is)")
    return openapi_object(cls, value, path)


def openapi_object(cls: type, value: Any, path: str = "") -> Any:
    """`value` (a mapping read from a manifest) as an object of the OpenAPI model `cls`; a
    ManifestError where a key is not one of its fields or a value is not of the field's type,
    the model's own error (ValueError) where it refuses the object (a required field missing)."""
    if not isinstance(value, dict):
        _fail(path, f"{value!r} is not an object ({cls.__name__})")
    fields = {json_key: attr for attr, json_key in cls.attribute_map.items()}  # type: ignore[attr-defined]
    home = "kubernetes" if cls.__module__.startswith("kubernetes.") else "kserve"
    kwargs = {}
    for key, item in value.items():
        if key not in fields:
            _fail(path, f"{key!r} is not a field of {cls.__name__}")
        kwargs[fields[key]] = _typed(cls.openapi_types[fields[key]], item, f"{path}/{key}", home)  # type: ignore[attr-defined]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"{path or '/'}: {cls.__name__}: {e}") from e


def api_object(obj: dict[str, Any]) -> Any:
    """A manifest's object as its model, found from apiVersion and kind: the kubernetes package's
    for core groups (`apps/v1` Deployment → V1Deployment), KServe's for serving.kserve.io."""
    group, _, version = obj["apiVersion"].rpartition("/")
    name = f"{version.capitalize()}{obj['kind']}"
    home = "kserve" if group == "serving.kserve.io" else "kubernetes"
    if home == "kserve":
        kserve_models()
    cls = _model_class(name, home)
    assert cls is not None and cls.__module__.startswith(home), f"no {home} model for {obj['apiVersion']} {obj['kind']}"
    return openapi_object(cls, obj)


# -- Compose ---------------------------------------------------------------------------------------

# Compose's durations (`1m30s`, `10s`, `1.5h`), its project, service and volume names.
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:us|ms|s|m|h))+")
_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*")
_NAME = re.compile(r"[a-zA-Z0-9._-]+")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}, $VAR; $$ is a `$`.
_REFERENCE = re.compile(r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")

Check = Callable[[Any, str], None]


def _is(kinds: tuple[type, ...], what: str) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # bool is an int
            _fail(path, f"{value!r} is not {what}")
    return check


def _matches(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            _fail(path, f"{value!r} is not {what}")
    return check


def _list_of(item: Check) -> Check:
    def check(value: Any, path: str) -> None:
        _is((list,), "a list")(value, path)
        for i, v in enumerate(value):
            item(v, f"{path}/{i}")
    return check


def _mapping(fields: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    """A mapping closed to keys other than `fields` (and Compose's `x-` extensions)."""
    def check(value: Any, path: str) -> None:
        _is((dict,), "a mapping")(value, path)
        for key in required:
            if key not in value:
                _fail(path, f"{key!r} is required")
        for key, v in value.items():
            if key not in fields and not str(key).startswith("x-"):
                _fail(path, f"{key!r} is not one of the keys checked here ({', '.join(fields)})")
            if key in fields:
                fields[key](v, f"{path}/{key}")
    return check


_STRING = _is((str,), "a string")
_DURATION_CHECK = _matches(_DURATION, "a Compose duration (like 1m30s)")


def _health_test(value: Any, path: str) -> None:
    """A string (run by the shell) or a list whose first item is NONE, CMD or CMD-SHELL."""
    if isinstance(value, str):
        return
    _list_of(_STRING)(value, path)
    if not value or value[0] not in ("NONE", "CMD", "CMD-SHELL") or (value[0] != "NONE" and len(value) < 2):
        _fail(path, f"{value!r} does not start with NONE, CMD or CMD-SHELL and a command")


def _device_count(value: Any, path: str) -> None:
    if value != "all" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        _fail(path, f"{value!r} is neither a positive count nor 'all'")


def _environment(value: Any, path: str) -> None:
    """The mapping form: variable names to scalars (None: taken from the shell as it is)."""
    _is((dict,), "a mapping")(value, path)
    for name, v in value.items():
        _matches(re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), "a variable name")(name, f"{path}/{name}")
        _is((str, int, float, bool, type(None)), "a scalar")(v, f"{path}/{name}")


_HEALTHCHECK = _mapping({"test": _health_test, "interval": _DURATION_CHECK, "timeout": _DURATION_CHECK,
                         "start_period": _DURATION_CHECK, "start_interval": _DURATION_CHECK,
                         "retries": _is((int,), "an integer"), "disable": _is((bool,), "a boolean")})
_DEVICE = _mapping({"driver": _STRING, "count": _device_count, "capabilities": _list_of(_STRING),
                    "device_ids": _list_of(_STRING), "options": _is((dict,), "a mapping")}, required=("capabilities",))
_DEPLOY = _mapping({"resources": _mapping({"reservations": _mapping({"devices": _list_of(_DEVICE)})})})
_SERVICE = _mapping({
    "image": _STRING,
    "command": _list_of(_STRING),  # the exec form: no shell between Compose and vllm
    "ports": _list_of(_matches(re.compile(r"(?:[0-9.]+:)?\d+(?:-\d+)?:\d+(?:-\d+)?(?:/(?:tcp|udp))?"),
                               "a port mapping [HOST_IP:]HOST:CONTAINER[/PROTOCOL]")),
    "ipc": _matches(re.compile(r"host|private|shareable|none|service:.+|container:.+"), "an IPC mode"),
    "environment": _environment,
    "volumes": _list_of(_matches(re.compile(r"[^:]+:/[^:]*(?::(?:ro|rw|z|Z))?"), "SOURCE:/TARGET[:MODE]")),
    "healthcheck": _HEALTHCHECK,
    "deploy": _DEPLOY,
}, required=("image",))


def _references(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, variable) for each interpolation in the strings of `value`; a ManifestError for a
    `$` that starts none (Compose refuses the file)."""
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in _references(v, f"{path}/{k}")]
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in _references(v, f"{path}/{i}")]
    if not isinstance(value, str):
        return []
    found, rest = [], value
    while (at := rest.find("$")) >= 0:
        m = _REFERENCE.match(rest, at)
        if m is None:
            _fail(path, f"{value!r}: a '$' that starts no variable reference (write $$ for a '$')")
        if m["braced"] or m["bare"]:
            found.append((path, m["braced"] or m["bare"]))
        rest = rest[m.end():]
    return found


def compose_file(doc: Any) -> list[tuple[str, str]]:
    """Check a Compose file's structure; the (path, variable) of each interpolation it makes."""
    _mapping({"name": _matches(_PROJECT, "a project name"), "services": _is((dict,), "a mapping"),
              "volumes": _is((dict,), "a mapping")}, required=("services",))(doc, "")
    volumes = doc.get("volumes", {})
    for name, volume in volumes.items():
        _matches(_NAME, "a volume name")(name, f"/volumes/{name}")
        _mapping({"name": _STRING, "driver": _STRING, "external": _is((bool,), "a boolean")})(volume or {}, f"/volumes/{name}")
    for name, service in doc["services"].items():
        path = f"/services/{name}"
        _matches(_NAME, "a service name")(name, path)
        _SERVICE(service, path)
        for i, mount in enumerate(service.get("volumes", [])):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/", "~")) and source not in volumes:
                _fail(f"{path}/volumes/{i}", f"the named volume {source!r} is not declared under volumes")
    return _references(doc, "")

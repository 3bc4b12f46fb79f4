"""The command line that starts a serving engine for one model, built from what the registry says
of it (`modelctl serve --engine E MODEL`).

    vllm              vllm serve REPO --served-model-name ID --host H --port P --max-model-len N
                        [--enable-auto-tool-choice --tool-call-parser X]      key: VLLM_API_KEY
    sglang            python -m sglang.launch_server --model-path REPO --served-model-name ID
                        --host H --port P --context-length N [--tool-call-parser X] [--api-key K]
    llama-server      llama-server -m GGUF --alias ID --host H --port P -c N --jinja --metrics
                                                                              key: LLAMA_API_KEY
    llama-cpp-python  python -m llama_cpp.server --model GGUF --model_alias ID --host H --port P
                        --n_ctx N                                             key: API_KEY
                      (-m modelctl.engines.llama_cpp_safe where the CPU check chose the safe path)
    ray-serve         python -m modelctl.engines.ray_app --model GGUF --model-id ID --host H
                        --port P --replicas R --n-ctx N       key: MODELCTL_RAY_API_KEY

vLLM and SGLang load the original weights (a Hugging Face repository, never the GGUF: `weights`
below); the llama.cpp engines load the GGUF file on this machine. The tool-call parser follows the
model's template family (the family's call format, `templates/tool_calls.py`, mapped to each
engine's parser name). A key goes through the engine's environment variable where it reads one, so
that it is not in the process list; SGLang reads it from its arguments only.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping
from urllib.parse import urlsplit

from modelctl.engines.catalog import engine_facts
from modelctl.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from modelctl.registry import Model

# The variable a shown command line reads its key from (`--dry-run` never prints a key).
KEY_VARIABLE = "MODELCTL_ENGINE_API_KEY"
LOCAL_ENGINES = ("vllm", "sglang", "llama-server", "llama-cpp-python", "ray-serve")

_HF_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co")

# A template family's tool-call format (templates/tool_calls.py) → each engine's parser for it.
# Formats an engine has no parser for get none: the engine answers without parsing calls.
TOOL_PARSERS: dict[str, dict[str, str]] = {
    "vllm": {"hermes": "hermes", "smollm3": "hermes", "llama3_json": "llama3_json", "mistral": "mistral",
             "mistral_args": "mistral", "harmony": "openai", "granite": "granite", "phi4": "phi4_mini_json"},
    "sglang": {"hermes": "qwen25", "smollm3": "qwen25", "llama3_json": "llama3", "mistral": "mistral",
               "mistral_args": "mistral", "harmony": "gpt-oss"},
}


@dataclass(frozen=True)
class LaunchSpec:
    """What an engine is to serve and where: `weights` is a repository id (vLLM, SGLang) or a
    GGUF path (the llama.cpp engines); `served_name` is the name clients ask for (the registry id)."""

    engine: str
    served_name: str
    weights: str
    port: int
    host: str = "127.0.0.1"
    context: int | None = None
    tool_format: str | None = None  # the template family's call format
    api_key: str | None = None
    replicas: int = 1  # copies of the model (Ray Serve)
    # False: load without llama.cpp's extra buffer types, the safe path modelctl's CPU check chose
    # for this llama-cpp-python build (llama-cpp-python's server runs through engines/llama_cpp_safe)
    extra_buffers: bool = True

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class EngineCommand:
    """A command to run: its arguments and the variables added to its environment. `secrets`
    are the values that a shown line replaces with a reference to KEY_VARIABLE."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()

    def shell_line(self) -> str:
        """The command as one shell line, keys given as "$MODELCTL_ENGINE_API_KEY"."""
        ref = f'"${KEY_VARIABLE}"'
        words = [f"{name}={ref if value in self.secrets else shlex.quote(value)}" for name, value in self.env.items()]
        words += [ref if arg in self.secrets else shlex.quote(arg) for arg in self.argv]
        return " ".join(words)


def engine_command(spec: LaunchSpec) -> EngineCommand:
    """The command line that starts `spec.engine` serving `spec`."""
    build = _BUILDERS.get(spec.engine)
    if build is None:
        raise UsageError(f"`serve --engine` does not start {engine_facts(spec.engine).label} (it starts "
                         f"{', '.join(LOCAL_ENGINES)})",
                         hint="add a running one with `modelctl registry add-endpoint URL --engine ENGINE`")
    return build(spec)


def tool_parser(engine: str, tool_format: str | None) -> str | None:
    """The engine's tool-call parser for a template family's call format (None: none)."""
    return TOOL_PARSERS.get(engine, {}).get(tool_format or "")


def _vllm(spec: LaunchSpec) -> EngineCommand:
    argv = ["vllm", "serve", spec.weights, "--served-model-name", spec.served_name,
            "--host", spec.host, "--port", str(spec.port)]
    if spec.context:
        argv += ["--max-model-len", str(spec.context)]
    parser = tool_parser("vllm", spec.tool_format)
    if parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", parser]
    return _keyed(argv, spec, env_name="VLLM_API_KEY")


def _sglang(spec: LaunchSpec) -> EngineCommand:
    argv = [sys.executable, "-m", "sglang.launch_server", "--model-path", spec.weights,
            "--served-model-name", spec.served_name, "--host", spec.host, "--port", str(spec.port)]
    if spec.context:
        argv += ["--context-length", str(spec.context)]
    parser = tool_parser("sglang", spec.tool_format)
    if parser:
        argv += ["--tool-call-parser", parser]
    return _keyed(argv, spec, flag="--api-key")


def _llama_server(spec: LaunchSpec) -> EngineCommand:
    argv = ["llama-server", "-m", spec.weights, "--alias", spec.served_name,
            "--host", spec.host, "--port", str(spec.port)]
    if spec.context:
        argv += ["-c", str(spec.context)]
    # --jinja: the GGUF's own chat template, and its tool calls; --metrics: /metrics for the probes
    return _keyed([*argv, "--jinja", "--metrics"], spec, env_name="LLAMA_API_KEY")


def _llama_cpp_python(spec: LaunchSpec) -> EngineCommand:
    module = "llama_cpp.server" if spec.extra_buffers else "modelctl.engines.llama_cpp_safe"
    argv = [sys.executable, "-m", module, "--model", spec.weights, "--model_alias", spec.served_name,
            "--host", spec.host, "--port", str(spec.port)]
    if spec.context:
        argv += ["--n_ctx", str(spec.context)]
    return _keyed(argv, spec, env_name="API_KEY")


def _keyed(argv: list[str], spec: LaunchSpec, *, env_name: str | None = None, flag: str | None = None) -> EngineCommand:
    """`argv` with the spec's key given as the engine takes it: in `env_name`, else after `flag`."""
    if not spec.api_key:
        return EngineCommand(tuple(argv))
    secrets = frozenset({spec.api_key})
    if env_name:
        return EngineCommand(tuple(argv), {env_name: spec.api_key}, secrets)
    assert flag is not None
    return EngineCommand((*argv, flag, spec.api_key), {}, secrets)


def _ray_serve(spec: LaunchSpec) -> EngineCommand:
    from modelctl.engines.ray_app import ray_serve_command  # noqa: PLC0415 (only for this engine)

    argv = ray_serve_command(spec.served_name, spec.weights, spec.port, spec.replicas, host=spec.host,
                             n_ctx=spec.context, api_key_env=RAY_KEY_ENV if spec.api_key else None)
    return _keyed(argv, spec, env_name=RAY_KEY_ENV)


RAY_KEY_ENV = "MODELCTL_RAY_API_KEY"  # the variable ray_app reads its clients' key from

_BUILDERS: dict[str, Callable[[LaunchSpec], EngineCommand]] = {
    "vllm": _vllm, "sglang": _sglang, "llama-server": _llama_server, "llama-cpp-python": _llama_cpp_python,
    "ray-serve": _ray_serve,
}
assert tuple(_BUILDERS) == LOCAL_ENGINES


# --- what the engine needs here ----------------------------------------------------------------------

# What must be importable (by this Python) or on PATH for each engine to start.
_NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "vllm": ("program", ("vllm",)),
    "sglang": ("modules", ("sglang",)),
    "llama-server": ("program", ("llama-server",)),
    "llama-cpp-python": ("modules", ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings",
                                     "starlette_context")),
    "ray-serve": ("modules", ("ray", "llama_cpp", "starlette")),
}


def check_installed(engine: str) -> None:
    """NotFoundError (exit 4), with the engine's install line, when it cannot start here."""
    what, names = _NEEDS.get(engine, ("", ()))
    missing = [n for n in names if (shutil.which(n) is None if what == "program" else not _importable(n))]
    if missing:
        where = "on PATH" if what == "program" else f"importable by {sys.executable}"
        raise NotFoundError(f"{engine_facts(engine).label} is not installed ({', '.join(missing)} is not {where})",
                            hint=engine_facts(engine).install)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def original_weights(model: "Model") -> str | None:
    """The Hugging Face repository of `model`'s original weights (not a GGUF conversion), as the
    registry gives it: a Hugging Face inference deployment's model, else the repository its model
    card or repository link is on. vLLM and SGLang load these, here and in `deploy`'s manifests."""
    for dep in model.deployments:
        if dep.kind == "hf-inference" and dep.model and "/" in dep.model and not _is_gguf_repo(dep.model):
            return dep.model
    for kind in ("model_card", "repo"):
        link = urlsplit(model.links.get(kind, ""))
        parts = [p for p in link.path.split("/") if p]
        if link.hostname in _HF_HOSTS and len(parts) == 2 and not _is_gguf_repo(parts[1]):
            return "/".join(parts)
    return None


def context_length(asked: int | None, window: int | None) -> int | None:
    """The context length an engine is started with: the one `asked` for, at most the model's
    `window` (an engine refuses more than the model was trained for), else the window."""
    if asked is None:
        return window
    return min(asked, window) if window else asked


def _is_gguf_repo(name: str) -> bool:
    return name.lower().endswith("gguf")


def tool_format_of(template: str | None) -> str | None:
    """The tool-call format of a built-in template named by the registry (None: none, or no
    such template)."""
    if not template:
        return None
    from modelctl.templates import find_conv_template  # noqa: PLC0415 (the templates: only for a launch)

    found = find_conv_template(template)
    return found.tool_format if found is not None else None

"""`modelctl deploy MODEL --emit k8s|kserve|compose|skypilot`: manifests that run a registry
model on vLLM elsewhere, written for the user to review and apply with their own tools."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import shell_complete, state
from modelctl.cli.help import examples
from modelctl.errors import UsageError
from modelctl.terminal_text import safe
from modelctl.units import counted

if TYPE_CHECKING:
    from modelctl.engines.manifests import Manifest, Plan

# What to run next, per target: the Secret or variables the manifest refers to, then the apply.
_NEXT = {
    "k8s": ("kubectl create secret generic {key_secret} --from-literal=api-key=YOUR_KEY",
            "kubectl create secret generic hf-token --from-literal=token=YOUR_HF_TOKEN   # gated weights only",
            "kubectl apply -f {file}"),
    "kserve": ("kubectl create secret generic hf-token --from-literal=token=YOUR_HF_TOKEN   # gated weights only",
               "kubectl apply -f {file}"),
    "compose": ("export VLLM_API_KEY=YOUR_KEY HF_TOKEN=YOUR_HF_TOKEN", "docker compose -f {file} up -d"),
    "skypilot": ("sky serve up {file} --secret VLLM_API_KEY --secret HF_TOKEN",),
}


def _next_steps(target: str, plan: Plan, file: str) -> str:
    return "\n".join("  " + line.format(key_secret=plan.key_secret, file=file) for line in _NEXT[target])


def _write(manifest: Manifest, out_dir: str) -> Path:
    from modelctl.files import write_user_file  # noqa: PLC0415 (modelctl.files: only when writing)

    directory = Path(out_dir).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission
        raise UsageError(f"cannot use {safe(str(directory))} as the output directory: {exc.strerror or exc}") from None
    return write_user_file(directory / manifest.filename, manifest.text.encode(), "manifest")


def deploy(
    model: Annotated[str, opt.reworded(opt.ModelArgument, "A registry model (id or alias) with open weights.")],
    emit: str = typer.Option(..., "--emit", "-e", metavar="k8s|kserve|compose|skypilot", autocompletion=shell_complete.emit_targets,
                             help="What to write: a Kubernetes Deployment, Service and PVC; a KServe InferenceService; "
                                  "a Compose file; a SkyPilot service."),
    out_dir: Optional[str] = typer.Option(None, "--output", "-o", metavar="DIR",
                                          help="Write the file into DIR (made if absent). Default: print it."),
    weights: Optional[str] = typer.Option(None, "--weights", metavar="OWNER/NAME",
                                          help="The Hugging Face repository vLLM loads. Default: the registry's."),
    name: Optional[str] = typer.Option(None, "--name", help="The objects' name. Default: from the model id."),
    gpu_memory: int = typer.Option(80, "--gpu-memory", metavar="GIB", min=8, max=1024,
                                   help="Memory of the GPUs to size for, per card (GiB)."),
    max_model_len: Optional[int] = typer.Option(None, "--max-model-len", min=256,
                                                help="Context length served. Default: the model's context window."),
    image: Optional[str] = typer.Option(None, "--image", help="The vLLM image. Default: vllm/vllm-openai:latest."),
) -> None:
    """Write manifests that serve MODEL with vLLM on a cluster, a GPU host or a cloud: the
    weights repository, served name, context length and GPUs come from the registry. Nothing is
    applied, and no credentials are read or written: the API key and Hugging Face token appear
    only as references (a Secret's name, a variable's name)."""
    from modelctl.engines import manifests  # noqa: PLC0415 (modelctl.engines.manifests: not on the --help path)
    from modelctl.resolver import Resolver  # noqa: PLC0415 (modelctl.resolver: not on the --help path)

    manifests.check_target(emit)
    entry = Resolver(state.get_registry, check=False, locate=False).resolve(model).registry_model("deploy")
    plan = manifests.plan(entry, weights=weights, name=name, gpu_memory_gib=gpu_memory, max_model_len=max_model_len,
                          image=image or manifests.VLLM_IMAGE)
    manifest = manifests.emit(plan, emit)
    s = plan.sizing
    summary = (f"{safe(plan.model_id)}: {s.weights_gib} GiB of weights ({safe(plan.weights)}), "
               f"{counted(s.gpus, 'GPU')} with at least {s.gpu_memory_mib / 1024:.0f} GiB each")
    if out_dir is None:
        sys.stdout.write(manifest.text)
        print(f"# {summary}", file=sys.stderr)
        return
    path = _write(manifest, out_dir)
    print(f"wrote {safe(str(path))}: {summary}")
    print("next:\n" + _next_steps(emit, plan, safe(str(path))))


def register(app: typer.Typer) -> None:
    app.command("deploy", rich_help_panel=panel.STORE, epilog=examples(
        ("Kubernetes manifests for a model, into a directory", "modelctl deploy qwen2.5-7b --emit k8s -o deploy/"),
        ("A KServe InferenceService, printed", "modelctl deploy Qwen/Qwen2.5-7B-Instruct --emit kserve"),
        ("A SkyPilot service sized for 24 GiB cards", "modelctl deploy qwen2.5-7b --emit skypilot --gpu-memory 24"),
    ))(deploy)

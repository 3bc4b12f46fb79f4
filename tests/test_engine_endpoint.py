"""`modelctl registry add-endpoint URL --engine E`: a serving engine's models written as
deployments that name the engine, a served name that is a registry model's joining that model
(by id, alias or Hugging Face repository) instead of becoming a model of its own; against a
loopback server speaking vLLM's model list."""

from __future__ import annotations

import json

import pytest
from providers import engine_wire as ew
from registries import model

from modelctl.config import get_paths
from modelctl.registry.loader import load_registry

QWEN = "Qwen/Qwen2.5-7B-Instruct"  # a built-in model, its id its Hugging Face repository


@pytest.fixture
def add(cli, server):
    def run(*args: str):
        return cli("registry", "add-endpoint", f"{server.url}/v1", *args)

    return run


def _port(server) -> str:
    return server.url.rsplit(":", 1)[1]


def test_a_served_registry_model_joins_it_and_the_rest_are_new_models(add, server, cli):
    server.route("GET", "/v1/models", ew.model_list(QWEN, "brand-new"))
    r = add("--engine", "vllm", "--yes", "--json")
    assert r.exit_code == 0, r.output
    outcomes = {o["model"]: o for o in json.loads(r.stdout)}
    assert outcomes[QWEN] == {"id": QWEN, "model": QWEN, "status": "added", "why": None, "joins": True}
    assert outcomes["brand-new"]["status"] == "added" and outcomes["brand-new"]["joins"] is False
    reg = load_registry()
    qwen = reg.get(QWEN)
    dep = qwen.deployment(f"vllm-127.0.0.1-{_port(server)}")
    assert (dep.kind, dep.engine, dep.model, dep.api_base) == ("openai-compatible", "vllm", QWEN, f"{server.url}/v1")
    assert {"hf-inference", "ollama", "llama.cpp"} <= {d.id for d in qwen.deployments}  # the built-in ones kept
    assert qwen.access.local_capable and qwen.source == str(get_paths().user_registry)
    assert reg.get("brand-new").deployments[0].engine == "vllm"
    # The joined deployment is probed as the engine it is.
    ew.vllm(server, QWEN, "brand-new", waiting=1, running=2, kv=0.5)
    r = cli("services", "-m", QWEN, "--json")
    assert r.exit_code == 0, r.output
    (svc,) = [s for s in json.loads(r.stdout) if s["engine"] == "vllm"]
    assert svc["state"] == "ready" and svc["load"] == {"waiting": 1.0, "running": 2.0, "kv_cache": 0.5}
    # Asked again: nothing new.
    r = add("--engine", "vllm", "--yes")
    assert r.exit_code == 0, r.output
    assert f"skipped {QWEN}: already a deployment of it" in r.stderr
    assert "skipped brand-new: already a deployment of it" in r.stderr


def test_a_served_alias_or_repository_names_the_model(add, server, cli):
    import tomli_w

    path = get_paths().user_registry
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = model("team/coder", {"kind": "openai-compatible", "model": "c", "api_base": "https://api.example.com/v1"},
                 tasks=["chat"], links={"model_card": "https://huggingface.co/Org/Coder-32B"},
                 access={"free_tier": False, "local_capable": False})
    path.write_text("# my models\n" + tomli_w.dumps({"schema_version": 1, "models": [mine]}))
    server.route("GET", "/v1/models", ew.model_list("Org/Coder-32B", "qwen2.5-7b"))
    r = add("--engine", "sglang", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "would add Org/Coder-32B as a deployment of team/coder" in r.stderr
    assert f"would add qwen2.5-7b as a deployment of {QWEN}" in r.stderr
    assert path.read_text().startswith("# my models")  # a dry run writes nothing
    assert add("--engine", "sglang", "--yes").exit_code == 0
    reg = load_registry()
    coder = reg.get("team/coder")
    assert [d.id for d in coder.deployments] == ["openai-compatible", f"sglang-127.0.0.1-{_port(server)}"]
    assert coder.deployments[1].model == "Org/Coder-32B" and coder.access.local_capable
    assert reg.get(QWEN).deployments[-1].model == "qwen2.5-7b"  # the name the engine serves it under
    assert "# my models" in path.read_text()


def test_a_model_served_under_several_names_joins_once_and_keeps_its_deployment(add, server, cli):
    """An engine lists one model under its id and aliases (`deploy` serves it so): the first name
    joins the model, the others are skipped as its other names, and nothing is lost asked again."""
    import tomli_w

    path = get_paths().user_registry
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = model("team/coder", {"kind": "openai-compatible", "model": "c", "api_base": "https://api.example.com/v1"},
                 tasks=["chat"], links={"repo": "https://hf.co/Org/Coder-32B"},  # a repository link, on hf.co
                 access={"free_tier": False, "local_capable": False})
    path.write_text(tomli_w.dumps({"schema_version": 1, "models": [mine]}))
    server.route("GET", "/v1/models", ew.model_list(QWEN, "qwen2.5-7b", "Org/Coder-32B"))
    for _ in range(2):
        r = add("--engine", "vllm", "--yes", "--json")
        assert r.exit_code == 0, r.output
    first = {o["model"]: o for o in json.loads(add("--engine", "vllm", "--dry-run", "--json").stdout)}
    assert all(o["status"] == "skipped" for o in first.values())
    reg = load_registry()
    served = [d for d in reg.get(QWEN).deployments if d.engine == "vllm"]
    assert [(d.id, d.model) for d in served] == [(f"vllm-127.0.0.1-{_port(server)}", QWEN)]
    assert [d.model for d in reg.get("team/coder").deployments if d.engine == "vllm"] == ["Org/Coder-32B"]


def test_other_names_of_a_model_joined_in_the_same_run_are_said(add, server):
    server.route("GET", "/v1/models", ew.model_list(QWEN, "qwen2.5-7b"))
    outcomes = {o["model"]: o for o in json.loads(add("--engine", "vllm", "--dry-run", "--json").stdout)}
    assert outcomes[QWEN]["status"] == "new" and outcomes[QWEN]["joins"]
    assert outcomes["qwen2.5-7b"]["status"] == "skipped"
    assert outcomes["qwen2.5-7b"]["why"] == f"another name of {QWEN}, which joins as {QWEN}"


def test_without_engine_nothing_is_joined(add, server):
    server.route("GET", "/v1/models", ew.model_list(QWEN))
    r = add("--yes", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["why"] == "already in the registry"


@pytest.mark.parametrize("args", [("--engine", "tgi"), ("--engine", "vllm", "--kind", "ollama")])
def test_a_bad_engine_is_a_usage_error(add, server, args):
    r = add(*args, "--yes")
    assert r.exit_code == 2 and r.stderr.startswith("modelctl: error: --engine") and "Traceback" not in r.output
    assert server.requests == []  # refused before anything is sent

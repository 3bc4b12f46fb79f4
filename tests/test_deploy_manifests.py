"""`modelctl deploy MODEL --emit …`: the manifests parsed back and checked (tests/manifest_checks.py)
against the models of installed packages — the `kubernetes` package's for core objects, the KServe
SDK's (`kserve`, installed with --no-deps) for the InferenceService: every key a field of its
model, every value of the field's type, required fields present — and the Compose file against the
parts of the Compose Specification it uses; for models of several sizes; no manifest ever holds a
secret's value."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from manifest_checks import ManifestError, api_object, compose_file, kserve_models

from modelctl import load_registry
from modelctl.engines import manifests, yamltext
from modelctl.engines.launch import tool_format_of, tool_parser
from modelctl.errors import UsageError

kubernetes = pytest.importorskip("kubernetes", reason="the `test` extra installs kubernetes")

# (registry id, --weights, GPUs, per-card GiB at least): 0.5B to 235B, and a 4-bit repository.
SIZES = [
    ("Qwen/Qwen2.5-0.5B-Instruct", None, 1, 1),
    ("Qwen/Qwen2.5-7B-Instruct", None, 1, 19),
    ("meta-llama/Llama-3.3-70B-Instruct", None, 4, 45),
    ("meta-llama/Llama-3.3-70B-Instruct", "casperhansen/llama-3.3-70b-instruct-awq", 1, 41),
    ("Qwen/Qwen3-235B-A22B", None, 8, 75),
]
CANARIES = {"VLLM_API_KEY": "sk-canary-vllm-0123456789", "HF_TOKEN": "hf_canaryTokenValue0123456789",
            "OPENAI_API_KEY": "sk-canary-openai-0123456789", "HUGGING_FACE_HUB_TOKEN": "hf_canaryHubToken0123"}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def kserve():
    """The KServe SDK's models (a skip where `pip install --no-deps kserve` has not run)."""
    return kserve_models()


def _plan(registry, model_id: str, weights: str | None) -> manifests.Plan:
    return manifests.plan(registry.get(model_id), weights=weights)


# -- the manifests, for several sizes -----------------------------------------------------------

@pytest.mark.parametrize(("model_id", "weights", "gpus", "per_card_gib"), SIZES)
def test_kubernetes_objects_validate_and_carry_the_size(registry, model_id, weights, gpus, per_card_gib):
    plan = _plan(registry, model_id, weights)
    docs = list(yaml.safe_load_all(manifests.emit(plan, "k8s").text))
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Deployment", "Service"]
    assert [type(api_object(doc)).__name__ for doc in docs] == ["V1PersistentVolumeClaim", "V1Deployment", "V1Service"]
    pvc, deployment, service = docs
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
    assert container["args"][:1] == [plan.weights]
    served = container["args"].index("--served-model-name") + 1
    assert container["args"][served:served + 1 + len(plan.aliases)] == [model_id, *registry.get(model_id).aliases]
    assert ("--tensor-parallel-size" in container["args"]) == (gpus > 1)
    parser = tool_parser("vllm", tool_format_of(registry.get(model_id).template))
    if "Qwen2.5" in model_id:
        assert parser == "hermes"  # Qwen 2.5 writes Hermes-style calls
    if parser:
        assert container["args"][-3:] == ["--enable-auto-tool-choice", "--tool-call-parser", parser]
    else:
        assert "--tool-call-parser" not in container["args"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    (expr,) = term["matchExpressions"]
    assert expr["key"] == "nvidia.com/gpu.memory" and expr["operator"] == "Gt"
    assert per_card_gib * 1024 <= int(expr["values"][0]) + 1 <= 80 * 1024  # fits the 80 GiB cards it was sized for
    assert int(pvc["spec"]["resources"]["requests"]["storage"].removesuffix("Gi")) > plan.sizing.weights_gib
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


@pytest.mark.parametrize(("model_id", "weights", "gpus", "per_card_gib"), SIZES)
def test_kserve_inference_service_validates_against_the_sdk_models(registry, kserve, model_id, weights, gpus,
                                                                    per_card_gib):
    plan = _plan(registry, model_id, weights)
    (doc,) = yaml.safe_load_all(manifests.emit(plan, "kserve").text)
    isvc = api_object(doc)
    assert isinstance(isvc, kserve.V1beta1InferenceService)
    assert isinstance(isvc.spec.predictor.model.resources, kubernetes.client.V1ResourceRequirements)
    model = doc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "huggingface"}
    assert f"--model_name={model_id}" in model["args"] and f"--model_id={plan.weights}" in model["args"]
    assert model["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)


@pytest.mark.parametrize(("model_id", "weights", "gpus", "per_card_gib"), SIZES)
def test_compose_and_skypilot_carry_the_size_and_the_probe(registry, model_id, weights, gpus, per_card_gib):
    plan = _plan(registry, model_id, weights)
    compose = yaml.safe_load(manifests.emit(plan, "compose").text)
    references = compose_file(compose)
    (name, service), = compose["services"].items()
    assert references == [(f"/services/{name}/environment/VLLM_API_KEY", "VLLM_API_KEY"),
                          (f"/services/{name}/environment/HF_TOKEN", "HF_TOKEN")]
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["count"] == gpus
    assert service["command"] == manifests.vllm_args(plan)
    sky = yaml.safe_load(manifests.emit(plan, "skypilot").text)
    assert sky["service"]["readiness_probe"]["path"] == "/v1/models"
    assert sky["resources"]["accelerators"], "at least one accelerator holds a card's share"
    assert set(sky["resources"]["accelerators"].values()) == {gpus}
    memory = dict(manifests.SKY_ACCELERATORS)
    assert all(memory[name] * 1024 >= plan.sizing.gpu_memory_mib for name in sky["resources"]["accelerators"])
    assert sky["run"].startswith("vllm serve " + plan.weights + " ")


DELETE = object()
_CONTAINER = ("spec", "template", "spec", "containers", 0)
_MODEL = ("spec", "predictor", "model")
_SERVICE = ("services", "*")  # the file's one service
# (target, path in its first object, the value put there or DELETE, the error): a misspelled key,
# a wrong type, a required field missing, a broken rule, each fails its check.
WRONG = [
    ("k8s", (*_CONTAINER, "containerPorts"), [{"containerPort": 8000}], ManifestError),
    ("k8s", ("spec", "replicas"), "1", ManifestError),
    ("k8s", (*_CONTAINER, "resources", "limits", "nvidia.com/gpu"), 1, ManifestError),
    ("k8s", (*_CONTAINER, "name"), DELETE, ValueError),
    ("kserve", (*_MODEL, "modelformat"), {"name": "huggingface"}, ManifestError),
    ("kserve", ("spec", "predictor", "minReplicas"), "1", ManifestError),
    ("kserve", (*_MODEL, "args"), "--backend=vllm", ManifestError),
    ("kserve", ("spec", "predictor", "tolerations", 0, "tolerationSeconds"), "60", ManifestError),
    ("kserve", (*_MODEL, "modelFormat"), DELETE, ValueError),
    ("kserve", ("spec", "predictor"), DELETE, ValueError),
    ("compose", ("service",), {}, ManifestError),
    ("compose", (*_SERVICE, "healthchek"), {"test": ["CMD", "true"]}, ManifestError),
    ("compose", (*_SERVICE, "healthcheck", "test"), ["python3", "-c", "pass"], ManifestError),
    ("compose", (*_SERVICE, "healthcheck", "start_period"), "30 minutes", ManifestError),
    ("compose", (*_SERVICE, "deploy", "resources", "reservations", "devices", 0, "count"), "every", ManifestError),
    ("compose", (*_SERVICE, "deploy", "resources", "reservations", "devices", 0, "capabilities"), DELETE, ManifestError),
    ("compose", (*_SERVICE, "volumes", 0), "cache:/root/.cache/huggingface", ManifestError),
    ("compose", (*_SERVICE, "environment", "VLLM_API_KEY"), "${VLLM_API_KEY", ManifestError),
    ("compose", (*_SERVICE, "command", -1), "costs 5$", ManifestError),
    ("compose", (*_SERVICE, "image"), DELETE, ManifestError),
]


def _change(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = next(iter(obj.values())) if key == "*" else obj[key]
    if value is DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


@pytest.mark.parametrize(("target", "path", "value", "error"), WRONG,
                         ids=[f"{t}:{'/'.join(map(str, p))}" for t, p, _, _ in WRONG])
def test_the_checks_refuse_a_wrong_manifest(registry, target, path, value, error):
    plan = _plan(registry, "Qwen/Qwen2.5-7B-Instruct", None)
    check, obj = {"k8s": (api_object, manifests.kubernetes(plan)[1]), "kserve": (api_object, manifests.kserve(plan)),
                  "compose": (compose_file, manifests.compose(plan))}[target]
    check(copy.deepcopy(obj))  # as written, it passes
    _change(obj, path, value)
    with pytest.raises(error):
        check(obj)


# -- secrets only by reference ------------------------------------------------------------------

def _env_entries(value: Any):
    """Every Kubernetes env entry (a mapping with `name` and `value` or `valueFrom`) in `value`."""
    if isinstance(value, dict):
        if "name" in value and ("value" in value or "valueFrom" in value):
            yield value
        for v in value.values():
            yield from _env_entries(v)
    elif isinstance(value, list):
        for v in value:
            yield from _env_entries(v)


@pytest.mark.parametrize("target", manifests.TARGETS)
def test_no_manifest_holds_a_secret_value(run_modelctl, tmp_path, target):
    """With keys in the environment and in modelctl's key file, the CLI's files hold none of
    them: the key and token appear as a Secret reference, a `${VAR}` interpolation or a SkyPilot
    secret given at launch."""
    stored = run_modelctl("keys", "set", "OPENAI_API_KEY", input="sk-canary-stored-0123456789\n")
    assert stored.returncode == 0, stored.stderr
    done = run_modelctl("deploy", "qwen2.5-7b", "--emit", target, "-o", str(tmp_path), env=CANARIES)
    assert done.returncode == 0, done.stderr
    (written,) = tmp_path.iterdir()
    text = written.read_text()
    for secret in [*CANARIES.values(), "sk-canary-stored-0123456789"]:
        assert secret not in text and secret not in done.stdout + done.stderr
    docs = list(yaml.safe_load_all(text))
    for entry in _env_entries(docs):
        assert "value" not in entry and set(entry["valueFrom"]) == {"secretKeyRef"}, entry
    if target == "compose":
        (service,) = docs[0]["services"].values()
        assert all(v.startswith("${") and v.endswith("}") for v in service["environment"].values())
    if target == "skypilot":
        assert docs[0]["secrets"] == {"VLLM_API_KEY": None, "HF_TOKEN": None}
        assert "$VLLM_API_KEY" in docs[0]["run"]


# -- the command ---------------------------------------------------------------------------------

def test_deploy_prints_without_output_dir_and_names_next_steps(run_modelctl, tmp_path):
    printed = run_modelctl("deploy", "qwen2.5-7b", "--emit", "k8s")
    assert printed.returncode == 0, printed.stderr
    assert [d["kind"] for d in yaml.safe_load_all(printed.stdout)] == ["PersistentVolumeClaim", "Deployment", "Service"]
    written = run_modelctl("deploy", "qwen2.5-7b", "--emit", "k8s", "-o", str(tmp_path / "out"))
    assert written.returncode == 0, written.stderr
    path = tmp_path / "out" / "qwen-qwen2-5-7b-instruct.k8s.yaml"
    assert path.read_text() == printed.stdout
    assert "kubectl create secret generic qwen-qwen2-5-7b-instruct-api-key" in written.stdout
    assert f"kubectl apply -f {path}" in written.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["qwen2.5-7b", "--emit", "helm"], "unknown --emit 'helm'"),
    (["gpt-4o", "--emit", "k8s"], "'gpt-4o' has no open weights"),
    (["deepseek-ai/DeepSeek-V3", "--emit", "k8s"], "need more than 8 GPUs of 80 GiB"),
    (["qwen2.5-7b", "--emit", "k8s", "--name", "Not_A_Label"], "is not a DNS label"),
    (["auto", "--emit", "k8s"], "auto"),
    (["no-such-model-anywhere", "--emit", "k8s"], "no-such-model-anywhere"),
    (["qwen2.5-7b", "--emit", "k8s", "--weights", "x; rm -rf ~"], "is not a Hugging Face repository"),
    (["qwen2.5-7b", "--emit", "k8s", "-o", "/dev/null/out"], "cannot use /dev/null/out as the output directory"),
])
def test_bad_input_is_one_line_and_a_usage_exit(run_modelctl, args, says):
    done = run_modelctl("deploy", *args)
    assert done.returncode in (2, 4), done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("modelctl: error: ") and says in line
    assert done.stdout == ""


def test_sizes_follow_gpu_memory_and_precision(registry):
    model = registry.get("meta-llama/Llama-3.3-70B-Instruct")
    assert manifests.plan(model, gpu_memory_gib=80).sizing.gpus == 4
    assert manifests.plan(model, gpu_memory_gib=141).sizing.gpus == 2
    assert manifests.plan(model, weights="x/Llama-3.3-70B-Instruct-FP8").sizing.gpus == 2
    assert manifests.plan(model, gpu_memory_gib=24).sizing.gpus == 8
    with pytest.raises(UsageError, match="more than 8 GPUs of 16 GiB"):
        manifests.plan(model, gpu_memory_gib=16)


def test_the_context_length_is_at_most_the_model_s(registry):
    """vLLM refuses a --max-model-len past what the model was trained for, after downloading the
    weights: the manifest asks for at most the model's window, as `serve --engine --ctx` does."""
    model = registry.get("Qwen/Qwen2.5-7B-Instruct")
    assert model.context_window
    assert manifests.plan(model).max_model_len == model.context_window
    assert manifests.plan(model, max_model_len=4096).max_model_len == 4096
    assert manifests.plan(model, max_model_len=99_999_999).max_model_len == model.context_window


def test_object_names_are_dns_labels():
    assert manifests.object_name("Qwen/Qwen2.5-7B-Instruct") == "qwen-qwen2-5-7b-instruct"
    assert manifests.object_name("01-ai/Yi-34B") == "m-01-ai-yi-34b"
    assert len(manifests.object_name("a" * 100)) == 63


# -- the YAML writer -----------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.text()
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                       max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_yaml_text_reads_back_as_written(value):
    assert yaml.safe_load(yamltext.dump(value)) == value


@pytest.mark.parametrize("text", ["no", "on", "8000", "1e3", "null", "~", "- x", "a: b", "#c", "x\n\n", "\n  y\nz",
                                  "a\u2028b", "\x85", "run\n  indented\n", "'q'", "\"", "!tag"])
def test_yaml_text_keeps_awkward_strings_strings(text):
    assert yaml.safe_load(yamltext.dump({text: [text, {"k": text}]})) == {text: [text, {"k": text}]}

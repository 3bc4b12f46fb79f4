"""A running serving engine as a deployment (`engine = "vllm"`, …): its health, served models and
load probed on loopback servers that speak vLLM's, SGLang's and llama.cpp server's documented
wire formats; the Prometheus text parser on its own; `services` and `-m auto` using the load."""

from __future__ import annotations

import json
import math

import pytest
from providers import engine_wire as ew
from providers.server import Reply, closed_port_url
from registries import model, write_registry

from modelctl.chat.availability import services
from modelctl.chat.selector import Constraints, local_counter, select_services
from modelctl.engines.catalog import engine_facts
from modelctl.engines.probe import (
    DOWN,
    LOADING,
    METRICS_BYTES,
    READY,
    Load,
    load_from,
    parse_metrics,
    probe_engine,
    server_root,
)
from modelctl.registry import load_registry

QWEN = "Qwen/Qwen2.5-7B-Instruct"
LOCAL = {"free_tier": True, "local_capable": True}


# --- the Prometheus text parser -------------------------------------------------------------

def test_the_parser_reads_labels_escapes_special_values_and_timestamps():
    text = (
        "# a comment\n"
        "# TYPE up gauge\n"
        'up{job="a\\"b\\\\c\\nd", instance = "x" ,} 1 1712345678000\n'
        "nan_one NaN\n"
        "plus +Inf\n"
        "minus -Inf\n"
        "sci 1.5e-3\n"
        "bare 7\n"
    )
    samples = {s.name: s for s in parse_metrics(text)}
    assert samples["up"].value == 1.0 and samples["up"].labels == (("job", 'a"b\\c\nd'), ("instance", "x"))
    assert math.isnan(samples["nan_one"].value)
    assert samples["plus"].value == math.inf and samples["minus"].value == -math.inf
    assert samples["sci"].value == 0.0015 and samples["bare"].labels == ()


def test_the_parser_skips_histograms_summaries_and_lines_it_cannot_read():
    text = (
        "# TYPE lat histogram\n"
        'lat_bucket{le="0.1"} 3\nlat_sum 0.2\nlat_count 3\n'
        "# TYPE q summary\n"
        'q{quantile="0.5"} 1\nq_sum 1\n'
        "# TYPE reqs counter\n"
        "reqs_total 9\n"
        "reqs_created 1.7e9\n"  # a counter's creation time: not a sample of its value
        'broken{le="0.1" 3\n'  # unclosed labels
        "two values 1 2 3\n"
        "word notanumber\n"
        "huge 1e999\n"
        f"long {'1' * 9000}\n"
        '{no_name="x"} 1\n'
        "ok 2\n"
    )
    samples = [(s.name, s.value) for s in parse_metrics(text)]
    assert samples == [("reqs_total", 9.0), ("ok", 2.0)]


def test_the_parser_keeps_only_the_series_asked_for():
    text = ew.vllm_metrics(2, 3, 0.25)
    names = {s.name for s in parse_metrics(text, ["vllm:num_requests_waiting"])}
    assert names == {"vllm:num_requests_waiting"}


def test_load_sums_requests_over_engines_and_averages_the_kv_cache():
    samples = parse_metrics(ew.vllm_metrics(6, 4, 0.5, engines=3))
    assert load_from(samples, engine_facts("vllm"), QWEN) == Load(6.0, 4.0, 0.5)


def test_load_of_one_model_where_the_engine_labels_several():
    text = ew.vllm_metrics(5, 1, 0.9, model="a") + ew.vllm_metrics(0, 1, 0.1, model="b").split("\n", 3)[3]
    samples = parse_metrics(text)
    assert load_from(samples, engine_facts("vllm"), "b") == Load(0.0, 1.0, 0.1)
    assert load_from(samples, engine_facts("vllm"), "a").waiting == 5.0
    assert load_from(samples, engine_facts("vllm"), "unlabelled").waiting == 5.0  # no label of it: all


def test_an_older_vllm_names_its_kv_cache_gpu_cache_usage_perc():
    text = "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.3\n"
    assert load_from(parse_metrics(text), engine_facts("vllm"), "m") == Load(None, None, 0.3)


def test_load_text_and_rank():
    assert Load(2, 8, 0.41).text() == "2 waiting, 8 running, KV cache 41%"
    assert Load().text() == "load unknown"
    assert Load(0, None, 0.9).rank() < Load(1, None, 0.0).rank() < Load(None, None, None).rank()


# --- probing each engine ----------------------------------------------------------------------

def test_vllm_ready_with_its_models_and_load(server):
    ew.vllm(server, QWEN, "my-lora", waiting=2, running=8, kv=0.41)
    status = probe_engine("vllm", f"{server.url}/v1")
    assert status.state == READY and "HTTP 200" in status.why
    assert status.served == (QWEN, "my-lora") and status.serves(QWEN) and not status.serves("other")
    assert status.load_for(QWEN) == Load(2.0, 8.0, 0.41)
    assert [r.path for r in server.requests] == ["/health", "/v1/models", "/metrics"]
    assert all(r.header("authorization") is None for r in server.requests)


def test_sglang_ready_with_its_load(server):
    server.route("GET", "/health", ew.HEALTHY)
    server.route("GET", "/v1/models", ew.model_list("meta-llama/Llama-3.1-8B-Instruct", owned_by="sglang"))
    server.route("GET", "/metrics", ew.metrics(ew.sglang_metrics(3, 5, 0.75, model="meta-llama/Llama-3.1-8B-Instruct")))
    status = probe_engine("sglang", f"{server.url}/v1")
    assert status.state == READY
    assert status.load_for("meta-llama/Llama-3.1-8B-Instruct") == Load(3.0, 5.0, 0.75)


def test_llama_server_loading_then_ready_and_without_metrics(server):
    server.route("GET", "/health", ew.LLAMA_LOADING, ew.LLAMA_OK)
    server.route("GET", "/v1/models", ew.model_list("qwen", owned_by="llamacpp"))
    server.route("GET", "/metrics", ew.LLAMA_NO_METRICS)
    loading = probe_engine("llama-server", f"{server.url}/v1")
    assert loading.state == LOADING and "HTTP 503" in loading.why and loading.served is None
    assert server.calls("/v1/models") == []  # nothing more is asked of a server still loading
    ready = probe_engine("llama-server", f"{server.url}/v1")
    assert ready.state == READY and ready.served == ("qwen",) and ready.load_for("qwen") is None
    server.route("GET", "/metrics", ew.metrics(ew.llama_server_metrics(1, 2)))
    assert probe_engine("llama-server", f"{server.url}/v1").load_for("qwen") == Load(1.0, 2.0, None)
    server.route("GET", "/metrics", ew.metrics(ew.llama_server_metrics(1, 2, kv_ratio=0.5)))  # an older build
    assert probe_engine("llama-server", f"{server.url}/v1").load_for("qwen") == Load(1.0, 2.0, 0.5)


def test_flapping_health_is_read_afresh_at_each_probe(server):
    server.route("GET", "/health", ew.HEALTHY, Reply(503, text=""), Reply(500, text="engine dead"), ew.HEALTHY)
    server.route("GET", "/v1/models", ew.model_list(QWEN))
    states = [probe_engine("vllm", f"{server.url}/v1").state for _ in range(4)]
    assert states == [READY, LOADING, DOWN, READY]


def test_an_engine_without_a_health_route_is_probed_by_its_model_list(server):
    server.route("GET", "/v1/models", Reply(503, text="warming up"), ew.model_list("m"),
                 Reply(200, text="<html>not a list</html>"))
    assert probe_engine("llama-cpp-python", f"{server.url}/v1").state == LOADING
    assert probe_engine("llama-cpp-python", f"{server.url}/v1").served == ("m",)
    odd = probe_engine("llama-cpp-python", f"{server.url}/v1")
    assert odd.state == DOWN and "not a model list" in odd.why
    assert server.calls("/health") == [] and server.calls("/metrics") == []


def test_a_closed_port_is_down():
    status = probe_engine("vllm", f"{closed_port_url()}/v1")
    assert status.state == DOWN and "connection refused" in status.why


def test_oversized_answers_are_refused_not_read(server):
    server.route("GET", "/health", Reply(200, text="x" * (128 << 10)))
    status = probe_engine("vllm", f"{server.url}/v1")
    assert status.state == DOWN and "no usable answer" in status.why
    ew.vllm(server, QWEN)
    server.route("GET", "/metrics", ew.metrics("# padding\n" * (METRICS_BYTES // 10 + 1)))
    status = probe_engine("vllm", f"{server.url}/v1")
    assert status.state == READY and status.load_for(QWEN) is None  # the engine is up; its load unknown


def test_a_model_list_behind_a_key_gets_the_deployments_key_only(server):
    server.route("GET", "/health", ew.HEALTHY)
    server.route("GET", "/v1/models", Reply(401, json={"error": {"message": "Unauthorized"}}))
    status = probe_engine("vllm", f"{server.url}/v1")
    assert status.state == READY and status.served is None and "not read" in status.why
    probe_engine("vllm", f"{server.url}/v1", key="sk-engine")
    assert server.calls("/v1/models")[-1].header("authorization") == "Bearer sk-engine"
    assert all(r.header("authorization") is None for r in server.calls("/health") + server.calls("/metrics"))


@pytest.mark.parametrize(("base", "root"), [("http://h:8000/v1", "http://h:8000"), ("http://h:8000/v1/", "http://h:8000"),
                                            ("https://h/openai/v1", "https://h/openai"), ("http://h:8000", "http://h:8000")])
def test_server_root(base, root):
    assert server_root(base) == root


# --- services and -m auto ---------------------------------------------------------------------

def _engine_dep(dep_id: str, url: str, served: str = QWEN, engine: str = "vllm", **more: str) -> dict[str, str]:
    return {"id": dep_id, "kind": "openai-compatible", "model": served, "api_base": f"{url}/v1", "engine": engine, **more}


@pytest.fixture
def two_gpus(tmp_path, server, second_server, provider_env):
    return write_registry(
        tmp_path / "registry.toml",
        model("test/qwen", _engine_dep("gpu1", server.url), _engine_dep("gpu2", second_server.url),
              tasks=["chat"], context_window=32768, access=LOCAL),
        model("test/other", _engine_dep("gpu1", server.url, served="not-served"), tasks=["chat"], access=LOCAL),
    )


def test_services_show_each_engines_state_and_load(two_gpus, server, second_server, cli):
    ew.vllm(server, QWEN, waiting=4, running=8, kv=0.9)
    second_server.route("GET", "/health", Reply(503, text=""))
    found = {s.id: s for s in services(load_registry(str(two_gpus)))}
    gpu1, gpu2, other = found["test/qwen@gpu1"], found["test/qwen@gpu2"], found["test/other@gpu1"]
    assert gpu1.usable and gpu1.load == Load(4.0, 8.0, 0.9)
    assert not gpu2.usable and gpu2.engine is not None and gpu2.engine.state == LOADING
    assert not other.usable and f"serves {QWEN}, not 'not-served'" in other.reason
    assert len(server.calls("/health")) == 1  # one probe per address, shared by its deployments
    r = cli("--registry", str(two_gpus), "services", "--all", "--json")
    assert r.exit_code == 0, r.output
    data = {s["service"]: s for s in json.loads(r.stdout)}
    assert data["test/qwen@gpu1"]["state"] == "ready" and data["test/qwen@gpu1"]["engine"] == "vllm"
    assert data["test/qwen@gpu1"]["load"] == {"waiting": 4.0, "running": 8.0, "kv_cache": 0.9}
    assert data["test/qwen@gpu2"]["state"] == "loading" and data["test/qwen@gpu2"]["load"] is None
    r = cli("--registry", str(two_gpus), "services")
    assert r.exit_code == 0 and "vllm ready, 4 waiting, 8 running, KV cache 90%" in " ".join(r.stdout.split())


def _chosen(registry_path) -> tuple[str, list[str]]:
    sel = select_services([{"role": "user", "content": "Hi"}], Constraints(model="test/qwen", max_tokens=10),
                          registry=load_registry(str(registry_path)), counter=local_counter())
    return sel.best.id, sel.best.reasons


def test_auto_prefers_the_least_loaded_of_equivalent_deployments(two_gpus, server, second_server):
    ew.vllm(server, QWEN, waiting=3, running=8, kv=0.2)
    ew.vllm(second_server, QWEN, waiting=0, running=8, kv=0.9)
    best, reasons = _chosen(two_gpus)
    assert best == "test/qwen@gpu2"  # the queue first, whatever the KV cache
    assert any("least loaded of 2 deployments of test/qwen (0 waiting" in r for r in reasons)
    ew.vllm(server, QWEN, waiting=0, running=1, kv=0.1)
    assert _chosen(two_gpus)[0] == "test/qwen@gpu1"  # equal queues: the emptier KV cache
    server.route("GET", "/metrics", Reply(404, text="not found"))
    assert _chosen(two_gpus)[0] == "test/qwen@gpu2"  # one that reports no load comes after


def test_auto_routes_around_an_engine_that_is_down(two_gpus, server, second_server):
    ew.vllm(server, QWEN, waiting=9, kv=0.99)
    second_server.route("GET", "/health", Reply(500, text="engine core died"))
    assert _chosen(two_gpus)[0] == "test/qwen@gpu1"

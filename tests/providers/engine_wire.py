"""Serving engines' probe routes in their documented wire formats: health, the OpenAI-style model
list, the Prometheus text of /metrics (vLLM's with its `model_name` and `engine` labels and its
histograms, SGLang's, llama.cpp server's unlabelled gauges and `_total` counters)."""

from __future__ import annotations

from providers.server import FakeServer, Reply

# vLLM and SGLang answer /health with an empty 200 once the model is loaded.
HEALTHY = Reply(200, text="")
# llama.cpp's server, while it loads the model: 503 and an OpenAI-style error.
LLAMA_LOADING = Reply(503, json={"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})
LLAMA_OK = Reply(200, json={"status": "ok"})
# llama.cpp's server started without --metrics.
LLAMA_NO_METRICS = Reply(501, json={"error": {"code": 501, "type": "not_supported_error",
                                              "message": "This server does not support metrics endpoint. Start it with `--metrics`"}})


def model_list(*ids: str, owned_by: str = "vllm") -> Reply:
    return Reply(json={"object": "list", "data": [
        {"id": i, "object": "model", "created": 1733000000, "owned_by": owned_by, "root": i, "parent": None,
         "max_model_len": 32768} for i in ids]})


def metrics(text: str) -> Reply:
    return Reply(text=text, headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"})


def vllm_metrics(waiting: float, running: float, kv: float, *, model: str = "Qwen/Qwen2.5-7B-Instruct",
                 engines: int = 1) -> str:
    """A vLLM V1 /metrics page, one label set per engine of a data-parallel server: the
    requests split among them, the same KV cache use on each."""
    def each(name: str, value: float, split: bool) -> str:
        share = value / engines if split else value
        return "".join(f'{name}{{engine="{e}",model_name="{model}"}} {share}\n' for e in range(engines))

    return (
        "# HELP python_gc_objects_collected_total Objects collected during gc\n"
        "# TYPE python_gc_objects_collected_total counter\n"
        'python_gc_objects_collected_total{generation="0"} 12345.0\n'
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        + each("vllm:num_requests_running", running, True)
        + "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        + each("vllm:num_requests_waiting", waiting, True)
        + "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        + each("vllm:kv_cache_usage_perc", kv, False)
        + "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
        "# TYPE vllm:prompt_tokens_total counter\n"
        f'vllm:prompt_tokens_total{{engine="0",model_name="{model}"}} 1.2e+04\n'
        "# HELP vllm:iteration_tokens_total Histogram of number of tokens per engine_step.\n"
        "# TYPE vllm:iteration_tokens_total histogram\n"
        f'vllm:iteration_tokens_total_sum{{engine="0",model_name="{model}"}} 0.0\n'
        f'vllm:iteration_tokens_total_bucket{{engine="0",le="1.0",model_name="{model}"}} 3.0\n'
        f'vllm:iteration_tokens_total_bucket{{engine="0",le="+Inf",model_name="{model}"}} 3.0\n'
        f'vllm:iteration_tokens_total_count{{engine="0",model_name="{model}"}} 3.0\n'
    )


def sglang_metrics(waiting: float, running: float, token_usage: float, *, model: str) -> str:
    return (
        "# HELP sglang:num_running_reqs The number of running requests.\n"
        "# TYPE sglang:num_running_reqs gauge\n"
        f'sglang:num_running_reqs{{model_name="{model}"}} {running}\n'
        "# HELP sglang:num_queue_reqs The number of requests in the waiting queue.\n"
        "# TYPE sglang:num_queue_reqs gauge\n"
        f'sglang:num_queue_reqs{{model_name="{model}"}} {waiting}\n'
        "# HELP sglang:token_usage The token usage.\n"
        "# TYPE sglang:token_usage gauge\n"
        f'sglang:token_usage{{model_name="{model}"}} {token_usage}\n'
        "# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.\n"
        "# TYPE sglang:time_to_first_token_seconds histogram\n"
        f'sglang:time_to_first_token_seconds_bucket{{le="0.1",model_name="{model}"}} 4.0\n'
        f'sglang:time_to_first_token_seconds_sum{{model_name="{model}"}} 0.31\n'
    )


def llama_server_metrics(deferred: int, processing: int, kv_ratio: float | None = None) -> str:
    """llama.cpp server's page (with --metrics); only older builds export the KV cache's ratio."""
    kv = ("# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.\n"
          "# TYPE llamacpp:kv_cache_usage_ratio gauge\n"
          f"llamacpp:kv_cache_usage_ratio {kv_ratio}\n") if kv_ratio is not None else ""
    return (
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
        "# TYPE llamacpp:prompt_tokens_total counter\n"
        "llamacpp:prompt_tokens_total 16\n"
        "# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.\n"
        "# TYPE llamacpp:predicted_tokens_seconds gauge\n"
        "llamacpp:predicted_tokens_seconds nan\n"
        "# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call\n"
        "# TYPE llamacpp:n_busy_slots_per_decode gauge\n"
        "llamacpp:n_busy_slots_per_decode 1.5\n"
        + kv
        + "# HELP llamacpp:requests_processing Number of requests processing.\n"
        "# TYPE llamacpp:requests_processing gauge\n"
        f"llamacpp:requests_processing {processing}\n"
        "# HELP llamacpp:requests_deferred Number of requests deferred.\n"
        "# TYPE llamacpp:requests_deferred gauge\n"
        f"llamacpp:requests_deferred {deferred}\n"
    )


def vllm(server: FakeServer, *served: str, waiting: float = 0, running: float = 0, kv: float = 0.0) -> None:
    """`server` answers as a ready vLLM serving `served` under this load."""
    server.route("GET", "/health", HEALTHY)
    server.route("GET", "/v1/models", model_list(*served))
    server.route("GET", "/metrics", metrics(vllm_metrics(waiting, running, kv, model=served[0])))

"""How many tokens a conversation costs a model, what sending it would cost, whether it fits.

    report = token_report("gpt-4o", [{"role": "user", "content": "Hello"}], max_tokens=256)
    report.count.tokens, report.count.method, report.fits, report.costs

Each count comes from the model's own tokenizer where one is here, over the prompt the model
actually receives (template included):

- a local GGUF model: its vocabulary through llama.cpp (vocabulary only, no weights loaded),
  over the prompt its conversation template renders;
- OpenAI models (OpenAI, Azure, compatible servers serving an OpenAI id): tiktoken's encoding for
  the model, plus the chat format's few tokens per message;
- Anthropic and Gemini, with a key: the provider's own count endpoint;
- anything else: an estimate, marked as one (`ESTIMATE_METHOD`).

Tools the model is told of (`tools=`) are counted too: a local model's template renders them
into the prompt, which is counted as it stands; a service is sent their definitions beside the
messages, and formats them its own way, so their JSON is counted with the service's tokenizer
(tiktoken, else the estimate) and the whole count is marked as not exact.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from modelctl.backends.factory import open_backend
from modelctl.chat.opening import DEFAULT_MAX_TOKENS, choose_template, resolve_model, target_defaults, user_defaults
from modelctl.errors import ModelctlError, UsageError
from modelctl.keys import find_key

if TYPE_CHECKING:
    from modelctl.backends.base import ToolSpec
    from modelctl.registry import Deployment, Model, RegistrySource
    from modelctl.resolver import Target

Message = Mapping[str, str]

ESTIMATE_METHOD = "estimate"
# The estimate: a token for every 4 characters (English prose with BPE vocabularies comes close),
# and the chat format's overhead: 4 tokens per message and 3 to start the answer.
CHARS_PER_TOKEN = 4
ESTIMATE_PER_MESSAGE = 4
ESTIMATE_REPLY = 3
# OpenAI's chat format: every message costs 3 tokens besides its role and content, and the
# answer is primed with 3 more (as OpenAI's guide to counting tokens gives them).
OPENAI_PER_MESSAGE = 3
OPENAI_REPLY = 3
# Kinds whose provider counts tokens for us (`Backend.count_tokens`), given a key.
COUNTING_KINDS = {"anthropic": "Anthropic count_tokens", "gemini": "Gemini countTokens"}
OPENAI_KINDS = ("openai", "azure-openai", "openai-compatible")


@dataclass
class TokenCount:
    """A prompt's size in tokens, how it was counted, and whether that is exact."""

    tokens: int
    method: str  # "llama.cpp vocabulary of FILE", "tiktoken o200k_base", "Anthropic count_tokens", "estimate"
    exact: bool
    note: str | None = None  # why an estimate, where it is one

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"tokens": self.tokens, "method": self.method, "exact": self.exact}
        if self.note:
            data["note"] = self.note
        return data


def estimate(messages: Sequence[Message], note: str | None = None) -> TokenCount:
    """The documented estimate: ceil(characters / 4) per message, plus the chat overhead."""
    tokens = sum(ESTIMATE_PER_MESSAGE + math.ceil(len(m.get("content", "")) / CHARS_PER_TOKEN) for m in messages)
    return TokenCount(tokens + ESTIMATE_REPLY, ESTIMATE_METHOD, False, note)


def estimate_rendered(entry: "Model", messages: Sequence[Message], note: str) -> TokenCount:
    """The estimate over the prompt the model's conversation template renders (a model modelctl
    renders itself, whose vocabulary is not here): ceil(characters / 4)."""
    from modelctl.templates import resolve_template  # noqa: PLC0415 (modelctl.templates: not on the chat --api-base path)

    tpl = resolve_template(registry_template=entry.template, names=[entry.id, *entry.aliases])
    text = tpl.render(list(messages), add_generation_prompt=True).text
    return estimate_text(text, f"{note}; the prompt rendered with template {tpl.name}, estimated")


def estimate_text(text: str, note: str) -> TokenCount:
    """The documented estimate of a bare text: ceil(characters / 4)."""
    return TokenCount(math.ceil(len(text) / CHARS_PER_TOKEN), ESTIMATE_METHOD, False, note)


def count_text(entry: "Model | None", dep: "Deployment | None", text: str,
               local_file: "Target | None" = None) -> TokenCount:
    """Tokens of `text` as it stands, with no chat format: what `complete` sends and what an
    embedding model reads. Local GGUF: its vocabulary; OpenAI ids: tiktoken; else the estimate."""
    if local_file is not None and local_file.path is not None:
        from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: PLC0415 (modelctl.backends.llamacpp: not on the chat --api-base path)

        backend = LlamaCppBackend(local_file.path, model_id=local_file.model_id, gguf=local_file.gguf)
        try:
            tokens = backend.count_text(text)
        finally:
            backend.close()
        return TokenCount(tokens, f"llama.cpp vocabulary of {local_file.path.name}", True)
    if dep is not None and dep.kind in OPENAI_KINDS:
        enc, name = _tiktoken(dep.model or (entry.id if entry else ""))
        if enc is None:
            return estimate_text(text, name)
        return TokenCount(len(enc.encode(text, disallowed_special=())), f"tiktoken {name}", True)
    kind = dep.kind if dep is not None else "ollama"
    return estimate_text(text, f"no tokenizer for '{kind}' deployments is available here")


def reads_text_only(entry: "Model | None") -> bool:
    """Whether a model takes bare text, not a conversation: an embedding model that does not chat."""
    return entry is not None and "embedding" in entry.tasks and "chat" not in entry.tasks


def _tiktoken(model_id: str) -> tuple[Any, str]:
    """(the tiktoken encoding of `model_id`, its name), or (None, why there is none here)."""
    from modelctl.backends.openai_tokens import EncodingUnavailable, encoding, encoding_name  # noqa: PLC0415 (modelctl.backends.openai_tokens: not on the chat --api-base path)

    name = encoding_name(model_id)
    if name is None:
        return None, f"no tiktoken encoding is known for '{model_id}'"
    try:
        return encoding(name), name
    except EncodingUnavailable as exc:
        return None, str(exc)


def count_openai(model_id: str, messages: Sequence[Message]) -> TokenCount:
    """Tokens of an OpenAI chat request for `model_id` with its tiktoken encoding (an estimate,
    saying why, when the model has no known encoding or the encodings are not installed)."""
    enc, name = _tiktoken(model_id)
    if enc is None:
        return estimate(messages, name)
    tokens = OPENAI_REPLY
    for message in messages:
        tokens += OPENAI_PER_MESSAGE + sum(len(enc.encode(str(value), disallowed_special=()))
                                           for value in message.values())
        if "name" in message:
            tokens += 1
    return TokenCount(tokens, f"tiktoken {name}", True)


def count_local(local: "Target", messages: Sequence[Message], template: str | None = None,
                tools: Sequence["ToolSpec"] = ()) -> TokenCount:
    """Tokens of the prompt a local GGUF model receives for `messages` (and `tools`): its
    template's rendering, tokenized with the file's vocabulary as a chat tokenizes it (the
    weights are not loaded)."""
    from modelctl.backends.base import GenerationParams, template_variables  # noqa: PLC0415 (modelctl.backends.base: not on the chat --api-base path)
    from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: PLC0415 (modelctl.backends.llamacpp: not on the chat --api-base path)

    assert local.path is not None and local.gguf is not None
    tpl = choose_template(local, template or target_defaults(local).get("template"))
    backend = LlamaCppBackend(local.path, template=tpl, model_id=local.model_id, gguf=local.gguf)
    try:
        rendered = backend.render(messages, template_variables(GenerationParams(tools=tuple(tools))))
        tokens = len(backend.tokenize_rendered(rendered))
    finally:
        backend.close()
    return TokenCount(tokens, f"llama.cpp vocabulary of {local.path.name} (template {tpl.name})", True)


def tool_definitions(tools: Sequence["ToolSpec"]) -> str:
    """The tools' definitions as a service is sent them (OpenAI's JSON form), for counting."""
    return json.dumps([tool.openai() for tool in tools], ensure_ascii=False, separators=(",", ":"))


def _with_tools(count: TokenCount, entry: "Model | None", dep: "Deployment", tools: Sequence["ToolSpec"]) -> TokenCount:
    """`count` of a request's messages, plus the tokens of the `tools` sent beside them."""
    if not tools:
        return count
    text = tool_definitions(tools)
    enc = _tiktoken(dep.model or (entry.id if entry else ""))[0] if dep.kind in OPENAI_KINDS else None
    added = len(enc.encode(text, disallowed_special=())) if enc is not None else math.ceil(len(text) / CHARS_PER_TOKEN)
    why = f"{len(tools)} tool definition{'s' if len(tools) != 1 else ''} counted from their JSON"
    return TokenCount(count.tokens + added, count.method, False, f"{count.note}; {why}" if count.note else why)


def _provider_count(entry: "Model", dep: "Deployment", messages: Sequence[Message],
                    api_key: str | None) -> TokenCount | None:
    """The provider's own count (Anthropic, Gemini) where a key is at hand; None otherwise."""

    if not find_key(dep.kind, key_env=dep.key_env, explicit=api_key).value:
        return None
    backend = open_backend(entry, dep, api_key=api_key)
    try:
        return TokenCount(backend.count_tokens(messages), COUNTING_KINDS[dep.kind], True)
    finally:
        backend.close()


def count_for(entry: "Model", dep: "Deployment", messages: Sequence[Message], *, api_key: str | None = None,
              ask_provider: bool = True, local_file: "Target | None" = None,
              tools: Sequence["ToolSpec"] = ()) -> TokenCount:
    """Tokens of `messages` (and `tools`) for `dep` of `entry`, by the best means at hand (the
    module's list). `ask_provider=False` never sends a request (Anthropic and Gemini are
    estimated then)."""
    if local_file is not None:
        return count_local(local_file, messages, tools=tools)
    return _with_tools(_count_messages(entry, dep, messages, api_key, ask_provider), entry, dep, tools)


def _count_messages(entry: "Model", dep: "Deployment", messages: Sequence[Message], api_key: str | None,
                    ask_provider: bool) -> TokenCount:
    if dep.kind in OPENAI_KINDS:
        return count_openai(dep.model or entry.id, messages)
    if dep.kind in COUNTING_KINDS:
        if not ask_provider:
            return estimate(messages, f"{COUNTING_KINDS[dep.kind]} is asked only when counting one model")
        counted = _provider_count(entry, dep, messages, api_key)
        if counted is not None:
            return counted
        return estimate(messages, f"no key for {COUNTING_KINDS[dep.kind]}")
    if dep.kind in ("llama.cpp", "ollama"):
        return estimate_rendered(entry, messages, "the model's GGUF file is not on this machine"
                                 if dep.kind == "llama.cpp" else "no tokenizer for 'ollama' deployments is available here")
    return estimate(messages, f"no tokenizer for '{dep.kind}' deployments is available here")


@dataclass
class DeploymentCost:
    """The estimated cost of sending the prompt (and an answer of `max_tokens`) to one deployment."""

    deployment: str
    kind: str
    input_per_mtok: float | None  # USD per 1M tokens; None: the registry has no price
    output_per_mtok: float | None
    input_usd: float | None
    max_output_usd: float | None
    total_usd: float | None  # what the request costs at most (None: unknown)
    cached_tokens: int = 0  # of the prompt, priced at the cache-read price (`cache_reads`)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def deployment_cost(entry: "Model", dep: "Deployment", tokens: int, max_tokens: int,
                    cached: int = 0) -> DeploymentCost:
    """The cost of `tokens` in (`cached` of them read from the provider's prompt cache) and at
    most `max_tokens` out on `dep` (local deployments cost 0)."""
    from modelctl.registry.pricing import cost, deployment_price  # noqa: PLC0415 (modelctl.registry.pricing: not on the chat --api-base path)

    price = deployment_price(entry, dep)
    if price is None and dep.local:
        from modelctl.registry.pricing import Price  # noqa: PLC0415 (modelctl.registry.pricing: not on the chat --api-base path)

        price = Price(0.0, 0.0)
    if price is None:
        return DeploymentCost(dep.id, dep.kind, None, None, None, None, None)
    rates = price.at(tokens)  # a long prompt may be billed at a higher tier, its answer too
    prompt_usd, total_usd = cost(price, tokens, 0, cached), cost(price, tokens, max_tokens, cached)
    return DeploymentCost(dep.id, dep.kind, rates.input, rates.output, prompt_usd, total_usd - prompt_usd, total_usd,
                          cached)


def cache_reads(model_id: str, entry: "Model", deps: Sequence["Deployment"], messages: Sequence[Message],
                prompt_tokens: int, *, hits: Mapping[str, int] | None = None) -> dict[str, int]:
    """{deployment id: the prompt tokens its prompt cache is expected to serve}, for the
    deployments where the history shows this conversation's prefix sent recently (`cache_estimate`;
    `hits`: what it found already, {deployment id: messages cached})."""
    from modelctl.chat.cache_estimate import cached_messages, cached_tokens  # noqa: PLC0415 (sqlite3 and the history: only for a conversation priced on a cached provider)

    by_id = {d.id: d for d in deps}
    if hits is None:
        hits = cached_messages(model_id, [(d.id, d.kind) for d in deps], messages)
    hits = {dep: n for dep, n in hits.items() if dep in by_id}
    return {dep: cached_tokens(by_id[dep].kind, count_for(entry, by_id[dep], messages[:n], ask_provider=False).tokens,
                               prompt_tokens) for dep, n in hits.items()}


@dataclass
class TokenReport:
    """A count for one model, with the costs of its deployments and the context-window check."""

    model_id: str
    deployment: str | None  # the deployment whose tokenizer counted (None: a bare GGUF file)
    count: TokenCount
    max_tokens: int
    context_window: int | None  # the window the run will use (`run_window`)
    costs: list[DeploymentCost] = field(default_factory=list)
    counted: str = "conversation"  # or "text": the bare text, no chat format (`--text`, embedding models)
    trained_window: int | None = None  # the model's own window, where it differs
    tools: int = 0  # tools whose definitions are counted in

    @property
    def fits(self) -> bool | None:
        """Whether the prompt and `max_tokens` of answer fit the context window (None: unknown)."""
        if self.context_window is None:
            return None
        return self.count.tokens + self.max_tokens <= self.context_window

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.model_id, "deployment": self.deployment, **self.count.to_dict(),
                "counted": self.counted, "tools": self.tools, "max_tokens": self.max_tokens, "context_window": self.context_window,
                "context_window_trained": self.trained_window or self.context_window, "fits": self.fits,
                "costs": [c.to_dict() for c in self.costs]}


def answer_tokens(entry: "Model | None", max_tokens: int | None = None) -> int:
    """The room kept for the answer: `max_tokens`, else the registry's default, else the model's
    most output tokens, else the local default (512)."""

    if max_tokens:
        return max_tokens
    if entry is not None:
        return entry.defaults.max_tokens or entry.max_output_tokens or DEFAULT_MAX_TOKENS
    return DEFAULT_MAX_TOKENS


def gguf_context(local: "Target") -> int | None:
    """The context length a GGUF file was trained for, from its header."""
    if local.gguf is None:
        return None
    value = local.gguf.metadata.get(f"{local.gguf.architecture}.context_length")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass(frozen=True)
class ContextWindow:
    """The context window a run will have (`used`), and the model's own (`trained`: what its
    GGUF was trained for, or what the registry says it takes). They differ for a local model,
    which loads with 4096 tokens unless --ctx asks for more."""

    used: int | None  # None: unknown
    trained: int | None

    @staticmethod
    def served(entry: "Model | None") -> "ContextWindow":
        window = entry.context_window if entry is not None else None
        return ContextWindow(window, window)


def run_window(entry: "Model | None", dep: "Deployment | None", *, local: "Target | None" = None,
               n_ctx: int | None = None, options: Mapping[str, Any] | None = None,
               config: Mapping[str, Any] | None = None) -> ContextWindow:
    """The context window a chat with `dep` of `entry` (or the GGUF file `local`) will use, as the
    chat itself reckons it: on a server or API, the model's context window; on llama.cpp, the
    size it loads with (`n_ctx` as --ctx, else config.toml's ctx, else `-o n_ctx` from `options`
    or the config, else 4096), at most the window it was trained for. `config`: the user's
    defaults for the model (default: read now). `tokens`, `-m auto` and `--min-context` judge
    what fits by it."""
    if local is None and (dep is None or dep.kind != "llama.cpp"):
        return ContextWindow.served(entry)
    from modelctl.backends.llama_options import context_size, option_ctx  # noqa: PLC0415 (modelctl.backends.llama_options: not on the chat --api-base path)

    trained = (gguf_context(local) if local is not None else None) or (entry.context_window if entry else None)
    if config is None:
        config = user_defaults(entry.id if entry else None)
    wanted = n_ctx or config.get("ctx") or option_ctx({**config.get("options", {}), **(options or {})})
    return ContextWindow(context_size(wanted, trained), trained)


def token_report(model: str | None, messages: Sequence[Message], *, deployment: str | None = None,
                 template: str | None = None, max_tokens: int | None = None, api_key: str | None = None,
                 registry: "RegistrySource" = None, text_only: bool | None = None,
                 notify: Callable[[str], None] | None = None, n_ctx: int | None = None,
                 tools: Sequence["ToolSpec"] = ()) -> TokenReport:
    """Count `messages` for MODEL (as `chat --model MODEL [--deployment D]` would send them) and
    price them on each of the model's deployments. `max_tokens` is the room kept for the answer
    (default: `answer_tokens`); the prompt and it must fit the context window the chat would use
    (`run_window`; `n_ctx` as chat's --ctx). With `text_only` (default: for embedding models) the
    one user message is counted as bare text, as `complete` and `embed` send it; an embedding
    keeps no room for an answer. `tools`: the tools the chat would offer (`-T`)."""

    # no MODEL: the default of the command that would send it (bare text: complete's)
    target = resolve_model(model, deployment, registry=registry, check=False,
                           task="completion" if text_only else "chat")
    if text_only is None:
        text_only = reads_text_only(target.entry)
    window = _target_window(target, n_ctx)
    if text_only:
        if tools:
            raise UsageError("tools are offered to a conversation: a text counted alone (--text) has none")
        return _text_report(target, messages, template, max_tokens, window)
    entry: "Model | None"
    entry, model_id = target.entry, target.model_id
    if target.is_local:
        count = count_local(target, messages, template, tools)
        dep_id = entry.deployment("llama.cpp").id if entry else None
    else:
        assert target.deployment is not None
        if template is not None and target.deployment.kind != "llama.cpp":
            raise UsageError(f"--template: only for local (llama.cpp) models; '{model_id}' runs on a server or API")
        if entry is None:  # a model an Ollama server has and the registry does not know
            count = _with_tools(estimate(messages, "no tokenizer for 'ollama' deployments is available here"),
                                None, target.deployment, tools)
        else:
            count = _count_served(entry, target.deployment, messages, api_key, notify, tools)
        dep_id = target.deployment.id
    room = answer_tokens(entry, max_tokens)
    cached = cache_reads(model_id, entry, entry.deployments, messages, count.tokens) if entry else {}
    costs = [deployment_cost(entry, d, count.tokens, room, cached.get(d.id, 0)) for d in entry.deployments] if entry else []
    return TokenReport(model_id, dep_id, count, room, window.used, costs, trained_window=window.trained,
                       tools=len(tools))


def _target_window(target: "Target", n_ctx: int | None) -> ContextWindow:
    """`run_window` for a resolved target; --ctx is for local models only, as in chat."""
    if target.is_local:
        return run_window(target.entry, None, local=target, n_ctx=n_ctx)
    if n_ctx is not None:
        raise UsageError(f"--ctx: only for local (llama.cpp) models; '{target.model_id}' runs on a server or API")
    return ContextWindow.served(target.entry)


def _text_report(target: "Target", messages: Sequence[Message], template: str | None,
                 max_tokens: int | None, window: ContextWindow) -> TokenReport:
    if len(messages) != 1 or messages[0].get("role") != "user":
        raise UsageError("a text is counted alone: --system and --messages are for conversations")
    if template is not None:
        raise UsageError("--template: a text is counted with no template")
    entry = target.entry
    local = target if target.is_local else None
    dep = target.deployment if local is None else entry.deployment("llama.cpp") if entry else None
    count = count_text(entry, dep, messages[0].get("content", ""), local)
    embedding = reads_text_only(entry)
    room = 0 if embedding and not max_tokens else answer_tokens(entry, max_tokens)
    costs = [deployment_cost(entry, d, count.tokens, room) for d in entry.deployments] if entry else []
    return TokenReport(target.model_id, dep.id if dep else None, count, room, window.used, costs, counted="text",
                       trained_window=window.trained)


def _count_served(entry: "Model", dep: "Deployment", messages: Sequence[Message], api_key: str | None,
                  notify: Callable[[str], None] | None, tools: Sequence["ToolSpec"]) -> TokenCount:
    """`count_for`, where a provider's count endpoint that fails gives way to the estimate (said)."""
    try:
        return count_for(entry, dep, messages, api_key=api_key, tools=tools)
    except ModelctlError as exc:
        if dep.kind not in COUNTING_KINDS:
            raise
        if notify is not None:
            notify(f"{COUNTING_KINDS[dep.kind]} failed ({exc}); estimating instead")
        return _with_tools(estimate(messages, f"{COUNTING_KINDS[dep.kind]} failed: {exc}"), entry, dep, tools)

"""Which leading part of a conversation a provider still has in its prompt cache, as the history
tells it: `tokens` and `--max-cost` price those prompt tokens at the cache-read price.

A prefix counts as cached when the history shows a request to the same model and deployment,
answered within the provider's cache lifetime (CACHE_RULES), whose messages were exactly the
conversation's first N messages (`history.prefix_hashes`), N no further than the messages before
the conversation's last user turn (that turn is new), and at least the provider's smallest
cached prompt. Anything else, a provider not in the table included, is priced in full: the
estimate may miss a saving, never invent one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from modelctl.errors import ModelctlError
from modelctl.history.store import History, prefix_hashes


@dataclass(frozen=True)
class CacheRule:
    lifetime_s: float  # how long after a request its prefix is assumed to stay cached
    min_tokens: int  # the fewest prompt tokens the provider caches
    step: int = 1  # cached tokens come in multiples of this above `min_tokens`
    needs_cache_use: bool = False  # only when the earlier request read or wrote the cache


# Each provider's documented prompt cache, at its shortest: OpenAI caches prompts of 1,024 tokens
# or more by itself, in steps of 128, and clears them after 5 to 10 minutes idle; Anthropic keeps
# what `cache_control` marked (chat --cache) for 5 minutes, refreshed on each hit.
CACHE_RULES: dict[str, CacheRule] = {
    "openai": CacheRule(300, 1024, 128),
    "azure-openai": CacheRule(300, 1024, 128),
    "anthropic": CacheRule(300, 1024, needs_cache_use=True),
}


def cacheable_prefixes(messages: Sequence[Any]) -> list[str]:
    """The hashes of the conversation's leading parts that may be cached: those that end before
    its last user turn."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
    return prefix_hashes(messages[:last_user])


def cached_messages(model_id: str, deployments: Sequence[tuple[str, str]], messages: Sequence[Any], *,
                    history: History | None = None, now: float | None = None) -> dict[str, int]:
    """{deployment id: how many leading messages of `messages` its cache holds} for those of
    `deployments` ((id, kind) pairs) where the history shows such a prefix sent recently."""
    rules = {dep: CACHE_RULES[kind] for dep, kind in deployments if kind in CACHE_RULES}
    hashes = cacheable_prefixes(messages) if rules else []
    if not hashes:
        return {}
    owned = history is None
    history = history or History()
    if owned and not history.path.exists():
        return {}  # no history: nothing known to be cached (and no database made for a question)
    now = time.time() if now is None else now
    length = {h: i + 1 for i, h in enumerate(hashes)}
    found: dict[str, int] = {}
    try:
        rows = history.recent_requests(model_id, now - max(r.lifetime_s for r in rules.values()))
    except ModelctlError:  # a history that cannot be read knows of nothing cached: priced in full
        rows = []
    try:
        for row in rows:
            rule = rules.get(row["deployment"])
            n = length.get(row["prompt_hash"], 0)
            if rule is None or n <= found.get(row["deployment"], 0) or row["created"] < now - rule.lifetime_s:
                continue
            if rule.needs_cache_use and not (row["cached_tokens"] or row["cache_write_tokens"]):
                continue
            found[row["deployment"]] = n
    finally:
        if owned:
            history.close()
    return found


def cached_tokens(kind: str, prefix_tokens: int, prompt_tokens: int) -> int:
    """Of a prompt of `prompt_tokens`, how many the cache serves when its first `prefix_tokens`
    are cached on a deployment of `kind` (0 below the provider's smallest cached prompt)."""
    rule = CACHE_RULES.get(kind)
    tokens = min(prefix_tokens, prompt_tokens)
    if rule is None or tokens < rule.min_tokens:
        return 0
    return rule.min_tokens + (tokens - rule.min_tokens) // rule.step * rule.step

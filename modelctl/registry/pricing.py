"""What an answer costs: a deployment's prices (USD per 1M tokens) and the cost of a token count.

The registry gives `cost_input`/`cost_output` on the model (`[models.access]`); a deployment's
own values override them one by one (a provider that charges more for output than another).
`price_tiers` add prices for long prompts, as Gemini and Anthropic charge them: a request whose
prompt has more than `above_input_tokens` tokens is billed, input and output, at the tier's
prices (the highest tier it passes).

    [[models.deployments]]
    kind = "gemini"
    cost_input = 1.25
    cost_output = 10.0
    price_tiers = [{ above_input_tokens = 200000, cost_input = 2.5, cost_output = 15.0 }]

`cost_cache_read` and `cost_cache_write` price the prompt tokens a provider read from its prompt
cache and wrote to it (a tier may give its own); prompt tokens the answer's usage reports as
cached are billed at them, at the input price where the registry has none (Gemini's implicit
cache, a provider whose cache price is not known). `cost_batch_input`/`cost_batch_output` are
the batch API's prices: `show` lists them, nothing here uses them.

`unit_prices` are the prices that are not per token: `request` (added to every request, a
chat's too), `image` (each generated image), `audio_minute` (audio transcribed) and
`million_characters` (text spoken), in USD; a deployment's override the model's unit by unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from modelctl.registry.model import Model
    from modelctl.registry.values import Access, Deployment, PriceTier

PER_TOKENS = 1_000_000  # registry prices are per million tokens


@dataclass(frozen=True)
class Tier:
    """The prices of a request whose prompt has more than `above` tokens."""

    above: int
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True)
class Price:
    """USD per 1M input (prompt) and output (completion) tokens, and the long-prompt tiers."""

    input: float
    output: float
    tiers: tuple[Tier, ...] = ()
    per_request: float = 0.0  # a fee every request pays, whatever its size
    cache_read: float | None = None  # None: cached prompt tokens cost the input price
    cache_write: float | None = None

    def at(self, input_tokens: int) -> "Price":
        """The prices a request with `input_tokens` prompt tokens is billed at."""
        for tier in reversed(self.tiers):
            if input_tokens > tier.above:
                return Price(tier.input, tier.output, per_request=self.per_request,
                             cache_read=tier.cache_read, cache_write=tier.cache_write)
        return Price(self.input, self.output, per_request=self.per_request,
                     cache_read=self.cache_read, cache_write=self.cache_write)


def deployment_price(model: "Model | None", deployment: "Deployment | None") -> Price | None:
    """The price of `deployment` of `model`; None when the registry knows neither price (a local
    model, a server given by URL). A price known for one direction only counts the other as 0;
    a tier without one direction's price keeps the base price there."""
    access = model.access if model is not None else None
    cost_in, cost_out, read, write = (_token_price(access, deployment, key) for key in
                                      ("cost_input", "cost_output", "cost_cache_read", "cost_cache_write"))
    per_request = unit_price(model, deployment, "request")
    if cost_in is None and cost_out is None and per_request is None:
        return None
    base_in, base_out = float(cost_in or 0.0), float(cost_out or 0.0)
    raw_tiers = (deployment.price_tiers if deployment is not None else ()) or (access.price_tiers if access else ())
    return Price(base_in, base_out, _tiers(raw_tiers, base_in, base_out, read, write), per_request or 0.0,
                 read, write)


def _token_price(access: "Access | None", deployment: "Deployment | None", key: str) -> float | None:
    """The deployment's price `key` (USD per 1M tokens), else the model's, else None."""
    for table in (deployment, access):
        value = getattr(table, key, None) if table is not None else None
        if value is not None:
            return float(value)
    return None


def unit_price(model: "Model | None", deployment: "Deployment | None", unit: str) -> float | None:
    """USD per `unit` (PRICE_UNITS) on `deployment` of `model`; None when the registry has none."""
    for table in (deployment.unit_prices if deployment is not None else None,
                  model.access.unit_prices if model is not None else None):
        if table and unit in table:
            return float(table[unit])
    return None


def _tiers(raw: Sequence[PriceTier], base_in: float, base_out: float,
           read: float | None, write: float | None) -> tuple[Tier, ...]:
    return tuple(Tier(int(t["above_input_tokens"]), float(t.get("cost_input", base_in)),
                      float(t.get("cost_output", base_out)),
                      _maybe(t.get("cost_cache_read", read)), _maybe(t.get("cost_cache_write", write)))
                 for t in raw)


def _maybe(value: float | None) -> float | None:
    return None if value is None else float(value)


def cost(price: Price, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0) -> float:
    """USD for `input_tokens` prompt tokens and `output_tokens` generated ones at `price` (the
    tier the whole prompt's size puts it in). Of the prompt tokens, `cache_read` were read from
    the provider's cache and `cache_write` written to it: each is billed at its cache price, or
    at the input price where there is none."""
    rates = price.at(input_tokens)
    fresh = max(input_tokens - cache_read - cache_write, 0)
    prompt = (fresh * rates.input + cache_read * _or(rates.cache_read, rates.input)
              + cache_write * _or(rates.cache_write, rates.input))
    return (prompt + output_tokens * rates.output) / PER_TOKENS + rates.per_request


def _or(value: float | None, default: float) -> float:
    return default if value is None else value

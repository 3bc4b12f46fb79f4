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

`unit_prices` are the prices that are not per token: `request` (added to every request, a
chat's too), `image` (each generated image), `audio_minute` (audio transcribed) and
`million_characters` (text spoken), in USD; a deployment's override the model's unit by unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from modelctl.registry.model import Model
    from modelctl.registry.values import Deployment, PriceTier

PER_TOKENS = 1_000_000  # registry prices are per million tokens


@dataclass(frozen=True)
class Tier:
    """The prices of a request whose prompt has more than `above` tokens."""

    above: int
    input: float
    output: float


@dataclass(frozen=True)
class Price:
    """USD per 1M input (prompt) and output (completion) tokens, and the long-prompt tiers."""

    input: float
    output: float
    tiers: tuple[Tier, ...] = ()
    per_request: float = 0.0  # a fee every request pays, whatever its size

    def at(self, input_tokens: int) -> "Price":
        """The prices a request with `input_tokens` prompt tokens is billed at."""
        for tier in reversed(self.tiers):
            if input_tokens > tier.above:
                return Price(tier.input, tier.output, per_request=self.per_request)
        return Price(self.input, self.output, per_request=self.per_request)


def deployment_price(model: "Model | None", deployment: "Deployment | None") -> Price | None:
    """The price of `deployment` of `model`; None when the registry knows neither price (a local
    model, a server given by URL). A price known for one direction only counts the other as 0;
    a tier without one direction's price keeps the base price there."""
    access = model.access if model is not None else None
    cost_in = deployment.cost_input if deployment is not None else None
    cost_out = deployment.cost_output if deployment is not None else None
    if cost_in is None and access is not None:
        cost_in = access.cost_input
    if cost_out is None and access is not None:
        cost_out = access.cost_output
    per_request = unit_price(model, deployment, "request")
    if cost_in is None and cost_out is None and per_request is None:
        return None
    base_in, base_out = float(cost_in or 0.0), float(cost_out or 0.0)
    raw_tiers = (deployment.price_tiers if deployment is not None else ()) or (access.price_tiers if access else ())
    return Price(base_in, base_out, _tiers(raw_tiers, base_in, base_out), per_request or 0.0)


def unit_price(model: "Model | None", deployment: "Deployment | None", unit: str) -> float | None:
    """USD per `unit` (PRICE_UNITS) on `deployment` of `model`; None when the registry has none."""
    for table in (deployment.unit_prices if deployment is not None else None,
                  model.access.unit_prices if model is not None else None):
        if table and unit in table:
            return float(table[unit])
    return None


def _tiers(raw: Sequence[PriceTier], base_in: float, base_out: float) -> tuple[Tier, ...]:
    return tuple(Tier(int(t["above_input_tokens"]), float(t.get("cost_input", base_in)),
                      float(t.get("cost_output", base_out))) for t in raw)


def cost(price: Price, input_tokens: int, output_tokens: int) -> float:
    """USD for `input_tokens` prompt tokens and `output_tokens` generated ones at `price` (the
    tier the prompt's size puts it in)."""
    rates = price.at(input_tokens)
    return (input_tokens * rates.input + output_tokens * rates.output) / PER_TOKENS + rates.per_request

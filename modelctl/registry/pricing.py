"""What an answer costs: a deployment's prices (USD per 1M tokens) and the cost of a token count.

The registry gives `cost_input`/`cost_output` on the model (`[models.access]`); a deployment's
own values override them one by one (a provider that charges more for output than another)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelctl.registry.model import Model
    from modelctl.registry.values import Deployment

PER_TOKENS = 1_000_000  # registry prices are per million tokens


@dataclass(frozen=True)
class Price:
    """USD per 1M input (prompt) and output (completion) tokens."""

    input: float
    output: float


def deployment_price(model: "Model | None", deployment: "Deployment | None") -> Price | None:
    """The price of `deployment` of `model`; None when the registry knows neither price (a local
    model, a server given by URL). A price known for one direction only counts the other as 0."""
    access = model.access if model is not None else None
    cost_in = deployment.cost_input if deployment is not None else None
    cost_out = deployment.cost_output if deployment is not None else None
    if cost_in is None and access is not None:
        cost_in = access.cost_input
    if cost_out is None and access is not None:
        cost_out = access.cost_output
    if cost_in is None and cost_out is None:
        return None
    return Price(float(cost_in or 0.0), float(cost_out or 0.0))


def cost(price: Price, input_tokens: int, output_tokens: int) -> float:
    """USD for `input_tokens` prompt tokens and `output_tokens` generated ones at `price`."""
    return (input_tokens * price.input + output_tokens * price.output) / PER_TOKENS

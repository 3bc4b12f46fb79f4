"""What a request costs: the registry's prices per million tokens, model level with deployment
overrides (`cost_input` / `cost_output`, USD per 1M tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelctl.registry.model import Model
    from modelctl.registry.values import Deployment


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float


def deployment_price(model: "Model", deployment: "Deployment") -> Price | None:
    """The price of `deployment` of `model`: the deployment's own costs where it gives them, else
    the model's; None when neither says (unknown, which is not free)."""
    access = model.access
    cost_in = deployment.cost_input if deployment.cost_input is not None else access.cost_input
    cost_out = deployment.cost_output if deployment.cost_output is not None else access.cost_output
    if cost_in is None and cost_out is None:
        return None
    return Price(float(cost_in or 0.0), float(cost_out or 0.0))


def cost(price: Price, input_tokens: int, output_tokens: int) -> float:
    """USD for `input_tokens` in and `output_tokens` out at `price`."""
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1_000_000

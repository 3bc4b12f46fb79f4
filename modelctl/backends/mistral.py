"""Mistral's API (`https://api.mistral.ai/v1`): chat completions in OpenAI's event format, with
its own parameter names (`random_seed`), usage in the last event without asking, embeddings
(`mistral-embed`) and model metadata (`GET /v1/models/{id}`). Tools as OpenAI's, but "call one"
is `tool_choice: "any"`, a tool's result names the tool, and a call's id is 9 letters or digits
(`tool_wire.mistral_call_id`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelctl.backends.api import ApiBackend
from modelctl.backends.base import BaseBackend
from modelctl.backends.openai import OpenAIBackend
from modelctl.backends.params import param_table
from modelctl.backends.tool_wire import MessageForm, mistral_call_id
from modelctl.keys import require_key
from modelctl.transport.http_client import ErrorContext

if TYPE_CHECKING:
    from modelctl.registry import Deployment

MISTRAL_API_BASE = "https://api.mistral.ai/v1"

PARAMETERS = param_table(max_tokens="max_tokens", temperature="temperature", top_p="top_p",
                         seed="random_seed", stop="stop", top_k=None, repeat_penalty=None)


class MistralBackend(OpenAIBackend):
    label = "Mistral"
    stream_usage = False  # Mistral sends usage in the last event unasked, and knows no stream_options
    complete = BaseBackend.complete  # no /completions endpoint (its FIM endpoint is for code infill)
    tool_required = "any"

    def __init__(self, deployment: "Deployment", *, api_base: str | None = None, api_key: str | None = None,
                 **options: Any) -> None:
        key = require_key("mistral", key_env=deployment.key_env, explicit=api_key)
        ApiBackend.__init__(self, deployment, key=key, **options)
        self.parameters = PARAMETERS
        self.query = None
        self.base = self.use_base(api_base or deployment.api_base or MISTRAL_API_BASE)
        ctx = ErrorContext(self.label, not_found=f"does not know the model '{deployment.model}'")
        self.http = self.make_client(ctx, {"authorization": f"Bearer {key.value}"})

    def message_form(self) -> MessageForm:
        return MessageForm(call_id=mistral_call_id, result_names=True)

    def live_info(self) -> dict[str, Any]:
        data = self.live_request("GET", f"{self.base}/models/{quote(self.model_id, safe='')}")
        if not isinstance(data, dict):
            return {}
        keep = ("id", "name", "description", "max_context_length", "aliases", "capabilities",
                "deprecation", "owned_by", "created")
        return {k: data[k] for k in keep if data.get(k) is not None}

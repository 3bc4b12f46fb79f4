"""Models deployed from the Azure AI model catalog (Azure AI Foundry): serverless API endpoints
and the Azure AI model inference endpoint of an AI services resource.

Both speak the Azure AI model inference API, which is OpenAI's chat-completions format with its
own addressing and headers — not Azure OpenAI's:

| | Azure OpenAI (`azure-openai`) | Azure AI model catalog (`azure-ai`) |
|---|---|---|
| URL | `{resource}/openai/deployments/{name}/chat/completions` | `{endpoint}/chat/completions` |
| model | the deployment in the URL | `model` in the body (the deployment name; a serverless endpoint serves one model and needs none) |
| `api-version` | required, e.g. 2024-10-21 | default 2024-05-01-preview |
| key | `api-key` | `api-key`, or an Entra ID token as `Authorization: Bearer` |
| unknown parameters | passed on | refused unless the `extra-parameters` header says `pass-through`, which modelctl sends, so `-o KEY=VALUE` reaches the model as with every other kind |

The endpoint is `https://NAME.REGION.models.ai.azure.com` (serverless) or
`https://RESOURCE.services.ai.azure.com/models` (model inference; `/models` is added to a bare
resource address).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelctl.backends.api import ApiBackend
from modelctl.backends.base import BaseBackend
from modelctl.backends.openai import OpenAIBackend
from modelctl.backends.params import param_table
from modelctl.errors import UsageError
from modelctl.keys import KeyInfo, require_key
from modelctl.redaction import remember_secret
from modelctl.transport.http_client import ErrorContext

if TYPE_CHECKING:
    from modelctl.registry import Deployment

DEFAULT_API_VERSION = "2024-05-01-preview"
ENDPOINT_ENV = ("AZURE_AI_ENDPOINT", "AZURE_INFERENCE_ENDPOINT")
# An Entra ID access token (`az account get-access-token --resource https://cognitiveservices.azure.com`),
# used when no key is given: keyless deployments accept only tokens.
TOKEN_ENV = "AZURE_AI_TOKEN"

PARAMETERS = param_table(max_tokens="max_tokens", temperature="temperature", top_p="top_p", seed="seed",
                         stop="stop", top_k=None, repeat_penalty=None)

# Hosts of AI services resources, whose model inference endpoint is under /models.
_RESOURCE_HOSTS = (".services.ai.azure.com", ".cognitiveservices.azure.com")


def inference_endpoint(url: str) -> str:
    """`url` with `/models` added when it is the bare address of an AI services resource."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:  # not a URL: use_base() says so
        return url
    if host.endswith(_RESOURCE_HOSTS) and parts.path.strip("/") == "":
        return url.rstrip("/") + "/models"
    return url


class AzureAIBackend(OpenAIBackend):
    """Chat completions and embeddings through the Azure AI model inference API."""

    stream_usage = False  # the API defines no stream_options; its last chunk carries usage anyway
    complete = BaseBackend.complete  # the model inference API has no /completions

    def __init__(self, deployment: "Deployment", *, api_base: str | None = None, api_key: str | None = None,
                 **options: Any) -> None:
        token = None if api_key else os.environ.get(TOKEN_ENV, "").strip() or None
        if token:
            remember_secret(token)
            key = KeyInfo(token, f"env {TOKEN_ENV}")
        else:
            key = require_key("azure-ai", key_env=deployment.key_env, explicit=api_key)
        ApiBackend.__init__(self, deployment, key=key, **options)
        self.label = "Azure AI"
        self.parameters = PARAMETERS
        endpoint = api_base or deployment.endpoint or next(
            (os.environ[v] for v in ENDPOINT_ENV if os.environ.get(v, "").strip()), "")
        if not endpoint:
            raise UsageError(
                f"the Azure AI deployment of '{deployment.model}' needs its endpoint "
                "(https://NAME.REGION.models.ai.azure.com or https://RESOURCE.services.ai.azure.com/models)",
                hint="set AZURE_AI_ENDPOINT, give the deployment an `endpoint`, or pass --api-base",
            )
        self.base = self.use_base(inference_endpoint(endpoint))
        self.query = {"api-version": deployment.api_version or DEFAULT_API_VERSION}
        headers = {"authorization": f"Bearer {key.value}"} if token else {"api-key": key.value or ""}
        # Fields the API does not define (`-o top_k=40`) go to the model instead of being refused.
        headers["extra-parameters"] = "pass-through"
        not_found = (f"has no model '{self.served_name}' at {self.endpoint} "
                     f"(api-version {self.query['api-version']})")
        self.http = self.make_client(ErrorContext(self.label, not_found=not_found, key_hint=self._key_hint()),
                                     headers)

    @property
    def served_name(self) -> str:
        """What the endpoint calls the model: the deployment's name, else the catalog model's."""
        return self.deployment.deployment or self.deployment.model or ""

    def body_model(self) -> str | None:
        return self.served_name

    def _key_hint(self) -> str | None:
        if self.key.source == f"env {TOKEN_ENV}":
            return f"the Entra ID token came from {TOKEN_ENV}; tokens expire after about an hour"
        return super()._key_hint()

    def live_info(self) -> dict[str, Any]:
        """The endpoint's `/info`: model name, type and provider."""
        data = self.live_request("GET", f"{self.base}/info", params=self.query)
        data = self.wire.obj(data, "the model information")
        return {k: data[k] for k in ("model_name", "model_type", "model_provider_name") if k in data}

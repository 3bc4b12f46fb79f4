"""A local model answered by the running `modelctl serve` of the same user, where it stays loaded.

It is the OpenAI-compatible backend pointed at the server's `/v1` with the server's local token,
and three differences the server understands: the request says the CLI logs the turn itself
(`x-modelctl-client-logs: 1`, so the server does not log it again), a `--schema` travels in
OpenAI's `json_schema` form (the server constrains the answer to it as llama.cpp does here), and
`--no-think` as the server's `think` field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from modelctl.backends.base import GenerationParams
from modelctl.backends.openai import OpenAIBackend, response_format
from modelctl.keys import KeyInfo
from modelctl.registry.values import Deployment

if TYPE_CHECKING:
    from modelctl.transport.http_client import ErrorContext, HttpClient
    from modelctl.transport.serve_state import ServerInfo

CLIENT_LOGS_HEADER = "x-modelctl-client-logs"
DEPLOYMENT_ID = "modelctl-serve"


class ServedLocalBackend(OpenAIBackend):
    """`model` (a registry id, or a GGUF path) at the modelctl server `server`."""

    def __init__(self, server: "ServerInfo", model: str, **options: Any) -> None:
        self.server = server
        deployment = Deployment(id=DEPLOYMENT_ID, kind="openai-compatible", model=model, api_base=f"{server.url}/v1")
        super().__init__(deployment, api_key=server.token, **options)
        self.key = KeyInfo(server.token, "the server's state file")

    def make_client(self, ctx: "ErrorContext", headers: Mapping[str, str]) -> "HttpClient":
        self.label = ctx.provider = f"the modelctl server at {self.endpoint} (pid {self.server.pid})"
        ctx.not_found = f"has no model '{self.deployment.model}'"
        return super().make_client(ctx, {**headers, CLIENT_LOGS_HEADER: "1"})

    def _key_hint(self) -> str | None:
        return "its token came from its state file; is another server listening at that address?"

    def _body(self, payload: dict[str, Any], params: GenerationParams, stream: bool, options: dict[str, Any],
              parameters: dict[str, str | None]) -> dict[str, Any]:
        body = super()._body(payload, params, stream, options, parameters)
        if params.response_format is not None:
            body["response_format"] = response_format(params.response_format)
        if params.think is not None:
            body.pop("chat_template_kwargs", None)
            body["think"] = params.think
        return body

    def live_info(self) -> dict[str, Any]:
        """The server, from its state file: its /v1/models would probe every service it knows."""
        return {"modelctl_server": {"url": self.server.url, "pid": self.server.pid, "version": self.server.version}}

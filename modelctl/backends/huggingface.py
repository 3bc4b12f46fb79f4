"""Hugging Face inference through `huggingface_hub.InferenceClient`: Inference Providers (the
router, or the deployment's `provider`), or a dedicated endpoint / TGI server at `api_base`.

Chat is `InferenceClient.chat_completion(stream=True)` (OpenAI's wire format underneath, tools
included: `tool_wire`);
embeddings are `feature_extraction`. The client does the HTTP; this module adds what the others
have: retries on 429/5xx/connection errors, modelctl's errors, and under `--debug` the exact
request the client sends (a hook on huggingface_hub's session, credentials redacted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, cast

from modelctl.backends.api import ApiBackend, ClosingIterator, StreamClock, StreamState, pop_stream_flag
from modelctl.backends.base import FINISH_STOP, Chunk, GenerationParams, Message, ResponseFormat, Usage
from modelctl.backends.openai import finish_reason, response_format
from modelctl.backends.params import param_table, request_fields
from modelctl.backends.tool_wire import openai_messages, refuse_tools, tool_fields
from modelctl.config import hf_token_path
from modelctl.errors import BackendError, ModelctlError, OfflineError
from modelctl.files import read_token_file
from modelctl.keys import KeyInfo, find_key, require_key
from modelctl.redaction import remember_secret
from modelctl.transport.debug_log import request_hooks
from modelctl.transport.http_client import (
    ErrorContext,
    error,
    hooked_session,
    hub_session_hooks,
    interrupted,
    media_type,
    status_error,
    transport_reason,
    what_came,
)
from modelctl.transport.response_limits import LimitExceeded, limits
from modelctl.transport.retry import RETRY_STATUSES, Attempt, parse_retry_after, run_with_retries
from modelctl.transport.server_text import one_line, provider_message
from modelctl.transport.wire import WireError

if TYPE_CHECKING:
    from huggingface_hub import InferenceClient
    from huggingface_hub.inference._providers import PROVIDER_OR_POLICY_T

    from modelctl.registry import Deployment

ROUTER = "https://router.huggingface.co"
# The chat_completion argument of each generation parameter.
PARAMETERS = param_table(max_tokens="max_tokens", temperature="temperature", top_p="top_p", seed="seed",
                         stop="stop", top_k=None, repeat_penalty=None)
# text-generation (TGI's `/generate`) names them its own way, and has top_k and a repetition penalty.
GENERATION_PARAMETERS = param_table(max_tokens="max_new_tokens", temperature="temperature", top_p="top_p",
                                    seed="seed", stop="stop", top_k="top_k", repeat_penalty="repetition_penalty")
# TGI's finish reasons.
GENERATION_FINISH = {"length": "length", "eos_token": FINISH_STOP, "stop_sequence": FINISH_STOP}


def _saved_token() -> str | None:
    """The token `hf auth login` saved (its file, HF_TOKEN_PATH or $HF_HOME/token), which
    InferenceClient would otherwise read unseen, and with no bound (a FIFO there would block)."""

    return read_token_file(hf_token_path())


class HuggingFaceBackend(ApiBackend):
    label = "Hugging Face"

    def __init__(self, deployment: "Deployment", *, api_base: str | None = None, api_key: str | None = None,
                 **options: Any) -> None:
        self.api_base = (api_base or deployment.api_base or "").rstrip("/") or None
        key = find_key("hf-inference", key_env=deployment.key_env, explicit=api_key)
        if not key.value:
            saved = _saved_token()
            if saved:
                remember_secret(saved)
                key = KeyInfo(saved, "the saved Hugging Face login")
            elif not self.api_base:
                key = require_key("hf-inference", key_env=deployment.key_env)
        super().__init__(deployment, key=key, **options)
        if self.api_base:
            self.use_base(self.api_base)  # for endpoint and redaction; the client is given the address as it is
            self.label = f"the Hugging Face endpoint at {self.endpoint}"
        else:
            self.endpoint = f"{ROUTER}/{deployment.provider}" if deployment.provider else ROUTER
        providers = f" {deployment.provider}" if deployment.provider else "s"
        what = "endpoint" if self.api_base else f"inference provider{providers}"
        self.ctx = ErrorContext(self.label, not_found=f"has no model '{deployment.model}' (through the {what})",
                                key_hint=f"the key came from {key.source}" if key.source else None,
                                endpoint=self.endpoint)
        self._client: InferenceClient | None = None
        self.limits = limits()
        self.came = "no answer"  # what the last response was (`what_came`), for messages
        self.web_page = False

    @property
    def client(self) -> InferenceClient:
        if self._client is None:
            from huggingface_hub import InferenceClient  # noqa: PLC0415 (huggingface_hub: imported only where used)

            timeout = self.timeout or self.limits.read_timeout
            # token=False: no key, not even the one `hf auth login` stored (huggingface_hub reads
            # False so, see build_hf_headers; InferenceClient's annotation says str | None).
            token: Any = self.key.value or False
            if self.api_base:
                self._client = InferenceClient(base_url=self.api_base, provider="hf-inference",
                                               token=token, timeout=timeout)
            else:
                # the registry's provider name; huggingface_hub refuses one it does not serve
                provider = cast("PROVIDER_OR_POLICY_T | None", self.deployment.provider)
                self._client = InferenceClient(provider=provider, token=token, timeout=timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- calls through the client ----------------------------------------------------------------

    def _hooks(self) -> dict[str, list[Callable[[Any], None]]]:
        """What huggingface_hub's session does for these calls: bound each answer, note what
        came back, and under --debug describe each request."""
        import httpx2  # noqa: PLC0415 (httpx2: imported only where used)

        hooks = hub_session_hooks(httpx2, self.limits)
        hooks["response"].append(self._note)
        if self.debug.enabled:
            for name, fns in request_hooks(self.debug).items():
                hooks[name] += fns
        return hooks

    def _note(self, response: Any) -> None:
        self.came = what_came(response)
        self.web_page = media_type(response) == "text/html"

    def _classify(self, exc: BaseException) -> Attempt | None:
        import httpx2  # noqa: PLC0415 (httpx2: imported only where used)
        from huggingface_hub.errors import HfHubHTTPError  # noqa: PLC0415 (huggingface_hub: imported only where used)

        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
            return Attempt(status in RETRY_STATUSES, parse_retry_after(exc.response.headers), f"HTTP {status}")
        if isinstance(exc, (httpx2.ConnectError, httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError)):
            return Attempt(True, None, transport_reason(exc))
        return None

    def call(self, fn: Callable[[], Any]) -> Any:
        """`fn()` with retries; failures become modelctl errors naming the service."""
        import httpx2  # noqa: PLC0415 (httpx2: imported only where used)
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError  # noqa: PLC0415 (huggingface_hub: imported only where used)

        attempts = [0]

        def once() -> Any:
            attempts[0] += 1
            with hooked_session(self._hooks()):
                return fn()

        try:
            return run_with_retries(once, self._classify, self.retry, self.debug)
        except HfHubHTTPError as exc:
            response = exc.response
            try:
                body = response.json()
            except Exception:
                body = None
            try:
                text = response.text
            except Exception:
                text = str(exc)
            raise status_error(self.ctx, response.status_code, body, text, attempts=attempts[0]) from None
        except InferenceTimeoutError:
            raise error(BackendError, f"{self.label} did not answer in time",
                        "MODELCTL_READ_TIMEOUT sets how long a server may stay silent") from None
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise error(OfflineError, f"cannot connect to {self.ctx.where()}: {transport_reason(exc)}") from None
        except httpx2.HTTPError as exc:
            raise error(BackendError, f"the request to {self.label} failed: {transport_reason(exc)}") from None
        except LimitExceeded as exc:
            raise error(BackendError, f"the answer from {self.label} {exc.why}") from None
        except ModelctlError:
            raise
        except RecursionError:
            raise error(BackendError, f"{self.label} answered with JSON nested too deeply ({self.came})") from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # huggingface_hub's own refusals
            raise error(BackendError, f"{self.label}: {one_line(str(exc))} ({self.came})") from None

    # --- the protocol --------------------------------------------------------------------------------

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        stream, options = pop_stream_flag(params.extra)
        fields, lacking = request_fields(params, PARAMETERS)
        kwargs: dict[str, Any] = {"model": self.deployment.model, **fields}
        self.note_ignored(lacking)
        if params.response_format is not None:
            # Given as OpenAI's json_schema, huggingface_hub writes each provider's own form
            # (TGI's `{"type": "json_object", "value": schema}`); JSON mode is the schema of any object.
            kwargs["response_format"] = response_format(ResponseFormat(params.response_format.json_schema()))
        if stream:
            kwargs["stream_options"] = {"include_usage": True}
        if options:
            kwargs["extra_body"] = options
        kwargs.update(tool_fields(params))
        turns = openai_messages(messages)
        clock = StreamClock()
        result = self.call(lambda: self.client.chat_completion(turns, stream=stream, **kwargs))
        if self.web_page:
            raise error(BackendError, f"{self.label} answered with a web page ({self.came}) instead of an answer",
                        "check the endpoint address")
        if not stream:
            choice = self._first_choice(result)
            message = self._part(choice, "message")
            if message is None:
                raise error(BackendError, f"{self.label} answered without a message") from None
            text = self.wire.text(getattr(message, "content", None), "the answer's content") or ""
            state = StreamState(finish_reason=self._reason(choice) or FINISH_STOP,
                                usage=self._usage(getattr(result, "usage", None)))
            state.calls.add_whole(getattr(message, "tool_calls", None), self.wire)
            return self.whole_answer(text, state, clock)
        return ClosingIterator(self._stream(iter(result), clock, self._read_output), [self._release])

    def complete(self, text: str, params: GenerationParams) -> Iterator[Chunk]:
        """The continuation of `text` from the text-generation task (TGI's `/generate`)."""
        refuse_tools(params, f"text generation at {self.label}")
        stream, options = pop_stream_flag(params.extra)
        fields, lacking = request_fields(params, GENERATION_PARAMETERS)
        self.note_ignored(lacking)
        model = None if self.api_base else self.deployment.model
        clock = StreamClock()
        result = self.call(lambda: self.client.text_generation(text, model=model, stream=stream, details=True,
                                                               **fields, **options))
        if self.web_page:
            raise error(BackendError, f"{self.label} answered with a web page ({self.came}) instead of an answer",
                        "check the endpoint address")
        if not stream:
            texts, reason, usage = self._read_generation(result, whole=True)
            state = StreamState(finish_reason=reason or FINISH_STOP, usage=usage)
            return self.whole_answer("".join(texts), state, clock)
        return ClosingIterator(self._stream(iter(result), clock, self._read_generation), [self._release])

    def _read_generation(self, out: Any, state: StreamState | None = None, *,
                         whole: bool = False) -> tuple[list[str], str | None, Usage | None]:
        """(text, finish reason, usage) of a text-generation output: a streamed token (special
        tokens are not text), or with `whole` the generated text; the last carries `details`."""
        wire = self.wire
        if whole:
            text = wire.text(getattr(out, "generated_text", None), "the generated text")
        else:
            token = getattr(out, "token", None)
            special = getattr(token, "special", False) is True
            text = None if special else wire.text(getattr(token, "text", None), "a token's text")
        details = getattr(out, "details", None)
        reason = usage = None
        if details is not None:
            reason = wire.reason(getattr(details, "finish_reason", None))
            reason = GENERATION_FINISH.get(reason, reason) if reason else None
            generated = wire.count(getattr(details, "generated_tokens", None), "details.generated_tokens")
            prompt = getattr(details, "prefill", None)
            if generated is not None and isinstance(prompt, list):
                usage = Usage(prompt_tokens=len(prompt), completion_tokens=generated)
        return ([text] if text else []), reason, usage

    def _first_choice(self, output: Any) -> Any:
        """The choice with index 0 of an output (huggingface_hub's dataclasses do not check
        types: the server's JSON is checked here)."""
        for choice in self.wire.items(getattr(output, "choices", None), "choices"):
            if (self.wire.count(getattr(choice, "index", None), "a choice's index") or 0) == 0:
                return choice
        return None

    def _part(self, choice: Any, name: str) -> Any:
        """`choice.message` or `choice.delta`: None, or an object (huggingface_hub keeps whatever
        the server sent where an object belongs)."""
        part = getattr(choice, name, None)
        if part is not None and not hasattr(part, "content"):
            raise self.wire.wrong(f"a choice's {name}", part, "an object")
        return part

    def _reason(self, choice: Any) -> str | None:
        return finish_reason(self.wire.reason(getattr(choice, "finish_reason", None)))

    def _usage(self, usage: Any) -> Usage | None:
        prompt = self.wire.count(getattr(usage, "prompt_tokens", None), "usage.prompt_tokens")
        completion = self.wire.count(getattr(usage, "completion_tokens", None), "usage.completion_tokens")
        if prompt is not None and completion is not None:
            return Usage(prompt_tokens=prompt, completion_tokens=completion)
        return None

    def _release(self) -> None:
        """Close the responses the client still holds (a stream stopped early)."""
        if self._client is not None:
            self._client.close()

    def _stream(self, outputs: Iterator[Any], clock: StreamClock,
                read: Callable[[Any, StreamState], tuple[list[str], str | None, Usage | None]]) -> Iterator[Chunk]:
        import httpx2  # noqa: PLC0415 (httpx2: imported only where used)

        state = StreamState()
        received = 0
        outputs_read = 0
        while True:
            try:
                out = next(outputs)
            except StopIteration:
                # huggingface_hub stops at `data: [DONE]` or a body that ended cleanly (it does not
                # say which); a connection that broke raises instead.
                break
            except httpx2.TimeoutException:
                raise interrupted(self.label, received, f"no data for {self.limits.read_timeout:g} s "
                                  "(MODELCTL_READ_TIMEOUT)") from None
            except httpx2.HTTPError as exc:
                raise interrupted(self.label, received, transport_reason(exc)) from None
            except LimitExceeded as exc:
                raise interrupted(self.label, received, f"the answer {exc.why}") from None
            except RecursionError:
                raise interrupted(self.label, received, "an event nested too deeply") from None
            except ValueError as exc:  # an unreadable event
                raise interrupted(self.label, received, f"unreadable event ({one_line(str(exc))})") from None
            except Exception as exc:  # an error event the server sent mid-stream
                why = f"{self.label} reported an error: {one_line(str(exc))}"
                raise interrupted(self.label, received, why) from None
            outputs_read += 1
            try:
                texts, reason, usage = read(out, state)
            except WireError as exc:
                raise interrupted(self.label, received, f"an event it cannot use: {exc.detail}") from None
            state.usage = usage or state.usage
            state.finish_reason = reason or state.finish_reason
            for text in texts:
                clock.tick()
                received += len(text)
                yield Chunk(text=text)
        if not outputs_read:
            raise interrupted(self.label, 0, f"the stream ended before the answer began: {self.came}")
        if state.finish_reason is None and state.calls:  # a call's arguments may be unfinished
            raise interrupted(self.label, received, "the stream ended before the tool calls were finished")
        state.finish_reason = state.finish_reason or FINISH_STOP  # the end marker, as OpenAI's [DONE]
        try:
            final = self.final_chunk(state, clock)
        except WireError as exc:
            raise interrupted(self.label, received, f"an answer it cannot use: {exc.detail}") from None
        yield final

    def _read_output(self, out: Any, state: StreamState) -> tuple[list[str], str | None, Usage | None]:
        """(text deltas, finish reason, usage) of one streamed output; its tool-call deltas go
        to `state`."""
        usage = self._usage(getattr(out, "usage", None))
        choice = self._first_choice(out)
        if choice is None:
            return [], None, usage
        delta = self._part(choice, "delta")
        state.calls.add_deltas(getattr(delta, "tool_calls", None), self.wire)
        text = self.wire.text(getattr(delta, "content", None), "the text of a delta")
        return ([text] if text else []), self._reason(choice), usage

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        model = None if self.api_base else self.deployment.model
        array = self.call(lambda: self.client.feature_extraction(list(texts), model=model))
        if getattr(array, "ndim", 2) == 3:  # token vectors from a model without pooling: mean-pool
            import numpy  # noqa: PLC0415 (numpy: imported only where used)

            try:
                with numpy.errstate(all="ignore"):
                    array = array.astype(float).mean(axis=1)
            except (TypeError, ValueError, OverflowError):
                raise self.wire.error("token vectors that are not numbers") from None
        rows = array.tolist() if hasattr(array, "tolist") else array
        return self.wire.vectors(rows, len(texts))

    def live_info(self) -> dict[str, Any]:
        if self.api_base:
            info = self.call(lambda: self.client.get_endpoint_info())
            keep = ("model_id", "model_dtype", "max_input_tokens", "max_total_tokens", "max_input_length",
                    "max_stop_sequences", "version", "router")
            return {k: info[k] for k in keep if isinstance(info, dict) and info.get(k) is not None}
        from huggingface_hub import HfApi  # noqa: PLC0415 (huggingface_hub: imported only where used)

        try:
            with hooked_session(self._hooks()):
                info = HfApi(token=self.key.value or False).model_info(self.deployment.model or "")
        except Exception as exc:
            return {"error": provider_message(None, str(exc))}
        return {k: v for k, v in {"pipeline_tag": info.pipeline_tag, "library_name": info.library_name,
                                  "gated": info.gated}.items() if v is not None}



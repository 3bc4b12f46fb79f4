"""The OpenAI wire format of `modelctl serve`: request bodies in, response objects and SSE out.

    parse_chat(body)        POST /v1/chat/completions  ─► ChatRequest
    parse_completion(body)  POST /v1/completions       ─► CompletionRequest
    parse_embeddings(body)  POST /v1/embeddings        ─► EmbeddingRequest

A body that is not what OpenAI documents is an `ApiError` (400, type "invalid_request_error")
whose `param` names the field (`messages[2].content`), never another exception: bytes that are
not UTF-8, NaN and Infinity, nesting deeper than 64 levels, numbers out of range, booleans where
a number belongs. Unknown top-level fields are ignored (clients send many), but what this server
cannot honour is refused rather than dropped: tools, logprobs, logit_bias, more than one choice.

The builders return the documented objects (`chat.completion`, `chat.completion.chunk`,
`text_completion`, the embeddings `list`), with modelctl's own facts in a top-level "modelctl"
object, and `sse()` frames one for a stream. They run once per streamed token: keep them cheap.
"""

from __future__ import annotations

import array
import base64
import binascii
import json
import math
import re
import secrets
import sys
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from modelctl.backends.base import (
    FINISH_STOP,
    NUMBER_PARAMS,
    REASONING_EFFORTS,
    TOOL_CHOICES,
    GenerationParams,
    ResponseFormat,
    ToolCall,
    ToolSpec,
    Usage,
)
from modelctl.backends.images import ImageMessage, ImagePart
from modelctl.chat.messages import clean_text
from modelctl.chat.session import check_params
from modelctl.chat.structured import check_schema
from modelctl.errors import UsageError
from modelctl.numbers import OPTION_INT_RANGE
from modelctl.tasks.media import EXTENSIONS, IMAGE_LIMIT, IMAGE_TYPES, sniff
from modelctl.transport.wire import MAX_DEPTH, TooBig, check_values, depth_exceeds
from modelctl.transport.wire import clean_text as clean_surrogates

# Bounds on what one request may ask for (the body's size is bounded by the server).
MAX_MESSAGES = 10_000
MAX_STOPS = 4  # as OpenAI
MAX_STOP_CHARS = 4096
MAX_EMBEDDING_INPUTS = 2048  # as OpenAI
MAX_NAME_CHARS = 4096  # `model` (a GGUF path at most), `user`
MAX_VALUES = 1 << 20  # JSON values in one body: a few bytes of JSON can be a hundred of objects
MAX_INT_DIGITS = 100
PENALTY_RANGE = (-2.0, 2.0)  # frequency_penalty, presence_penalty, as OpenAI

# The roles a message may have, and the role the conversation gives each.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# reasoning_effort values that turn reasoning off.
NO_REASONING = ("none", "minimal")
# The finish reasons OpenAI's objects allow (of those modelctl can have).
FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls")
MAX_TOOLS = 128
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ID_PREFIXES = {"chat": "chatcmpl", "text": "cmpl"}  # by kind: chat or text completion
ENCODINGS = ("float", "base64")

FUNCTIONS_MESSAGE = "functions and function_call are the old form of tools: send tools and tool_choice"
# Fields this server cannot honour, refused when they ask for something (see `_asks`), each
# with what the error says.
UNSUPPORTED = {
    "functions": FUNCTIONS_MESSAGE, "function_call": FUNCTIONS_MESSAGE,
    "logprobs": "logprobs are not supported by this server", "top_logprobs": "logprobs are not supported by this server",
    "logit_bias": "logit_bias is not supported by this server", "audio": "audio output is not supported by this server",
}

INVALID = "invalid_request_error"
_STATUS_TYPES = {401: "authentication_error", 403: "permission_error", 404: INVALID, 429: "rate_limit_error"}


class ApiError(Exception):
    """An answer with an OpenAI-shaped error body: `{"error": {message, type, param, code}}`.
    `type` defaults by status (invalid_request_error for 400, server_error for 5xx, …)."""

    def __init__(self, status: int, message: str, *, type: str | None = None, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _STATUS_TYPES.get(status, "server_error" if status >= 500 else INVALID)
        self.param = param
        self.code = code
        self.headers: dict[str, str] = {}  # sent with the error (Retry-After)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    """A 400 about the request's content."""
    return ApiError(400, message, param=param, code=code)


# --- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion request. `messages` are `{"role", "content"}` (roles system, user,
    assistant), an `ImageMessage` where a user message has images; `response_format` is also in
    `params`, which the backend reads, and is kept here for checking the answer."""

    model: str
    messages: list[dict[str, Any]]
    params: GenerationParams
    stream: bool
    include_usage: bool
    response_format: ResponseFormat | None
    user: str | None


@dataclass(frozen=True)
class CompletionRequest:
    """A text completion request (`echo`: the answer starts with the prompt)."""

    model: str
    prompt: str
    params: GenerationParams
    stream: bool
    include_usage: bool
    echo: bool
    user: str | None = None


@dataclass(frozen=True)
class EmbeddingRequest:
    """An embeddings request: one vector per text of `inputs`."""

    model: str
    inputs: list[str]
    encoding_format: str  # "float" | "base64"
    user: str | None = None


def parse_chat(body: bytes) -> ChatRequest:
    """The body of POST /v1/chat/completions; ApiError when it is not one this server can answer."""
    request = _load(body)
    _refuse_unsupported(request, "n")
    fmt = _response_format(request)
    stream, include_usage = _streaming(request)
    tools = _tools(request)
    params = replace(_params(request, fmt), tools=tools, tool_choice=_tool_choice(request, tools))
    return ChatRequest(model=_model(request), messages=_messages(request), params=params,
                       stream=stream, include_usage=include_usage, response_format=fmt, user=_user(request))


def parse_completion(body: bytes) -> CompletionRequest:
    """The body of POST /v1/completions: one prompt, as text."""
    request = _load(body)
    _refuse_unsupported(request, "n", "best_of")
    if request.get("suffix") not in (None, ""):
        raise invalid("suffix is not supported by this server", request.at("suffix"), "unsupported_parameter")
    prompt = _texts(request, "prompt", most=1, too_many="one prompt per request (prompt lists are not supported)",
                    required=True, tokens_refused=True)
    stream, include_usage = _streaming(request)
    return CompletionRequest(model=_model(request), prompt=prompt[0], params=_params(request, None), stream=stream,
                             include_usage=include_usage, echo=bool(request.flag("echo")), user=_user(request))


def parse_embeddings(body: bytes) -> EmbeddingRequest:
    """The body of POST /v1/embeddings: 1 to MAX_EMBEDDING_INPUTS texts."""
    request = _load(body)
    if request.get("dimensions") is not None:
        raise invalid("dimensions is not supported by this server: vectors have the model's own length",
                      request.at("dimensions"), "unsupported_parameter")
    inputs = _texts(request, "input", most=MAX_EMBEDDING_INPUTS, too_many=f"at most {MAX_EMBEDDING_INPUTS} inputs",
                    required=True, tokens_refused=True, non_empty=True)
    encoding = request.string("encoding_format") or "float"
    if encoding not in ENCODINGS:
        raise invalid(f"encoding_format must be float or base64, not {encoding!r}", request.at("encoding_format"))
    return EmbeddingRequest(model=_model(request), inputs=inputs, encoding_format=encoding, user=_user(request))


class _Object:
    """One JSON object of a request, read field by field; every error names the field by its
    path from the top (`messages[2].content`). An absent field and null are the same."""

    __slots__ = ("data", "path")

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path

    def at(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str) -> Any:
        return self.data.get(name)

    def wrong(self, name: str, expected: str) -> ApiError:
        return wrong_type(self.at(name), self.get(name), expected)

    def required(self, name: str) -> Any:
        value = self.get(name)
        if value is None:
            raise invalid(f"{self.at(name)} is required", self.at(name), "missing_required_parameter")
        return value

    def string(self, name: str, *, limit: int | None = None) -> str | None:
        value = self.get(name)
        return None if value is None else self._text(name, value, limit)

    def required_string(self, name: str, *, limit: int | None = None) -> str:
        return self._text(name, self.required(name), limit)

    def _text(self, name: str, value: Any, limit: int | None) -> str:
        if not isinstance(value, str):
            raise self.wrong(name, "a string")
        if limit is not None and len(value) > limit:
            raise invalid(f"{self.at(name)} is longer than {limit:,} characters", self.at(name))
        return clean_text(value)

    def flag(self, name: str) -> bool | None:
        value = self.get(name)
        if value is not None and not isinstance(value, bool):
            raise self.wrong(name, "a boolean")
        return value

    def integer(self, name: str) -> int | None:
        """A whole number an int of llama.cpp and the APIs can hold (OPTION_INT_RANGE)."""
        value = self.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong(name, "an integer")
        low, high = OPTION_INT_RANGE
        if not low <= value <= high:
            raise invalid(f"{self.at(name)} must be from {low} to {high}", self.at(name))
        return value

    def number(self, name: str) -> float | None:
        """A finite number (an integer is one too; a boolean is not)."""
        value = self.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.wrong(name, "a number")
        number = float(value)  # an integer has at most MAX_INT_DIGITS digits: a float holds it
        if not math.isfinite(number):
            raise invalid(f"{self.at(name)} must be a finite number", self.at(name))
        return number

    def object(self, name: str) -> _Object | None:
        value = self.get(name)
        return None if value is None else self._object(name, value)

    def required_object(self, name: str) -> _Object:
        return self._object(name, self.required(name))

    def _object(self, name: str, value: Any) -> _Object:
        if not isinstance(value, dict):
            raise self.wrong(name, "an object")
        return _Object(value, self.at(name))

    def objects(self, name: str, items: list[Any]) -> list[_Object]:
        """The items of the array `name` (its value `items`), each an object."""
        found = []
        for i, item in enumerate(items):
            path = self.at(f"{name}[{i}]")
            if not isinstance(item, dict):
                raise wrong_type(path, item, "an object")
            found.append(_Object(item, path))
        return found


def wrong_type(path: str, value: Any, expected: str) -> ApiError:
    return invalid(f"{path} must be {expected}, not {_kind(value)}", path, "invalid_type")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {dict: "an object", list: "an array", str: "a string", type(None): "null"}
    return names.get(type(value), "a number")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_int(digits: str) -> int:
    # Python refuses past 4,300 digits with a message about its own settings; no request needs 100.
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of more than {MAX_INT_DIGITS} digits")
    return int(digits)


def _load(body: bytes) -> _Object:
    """The body as a JSON object: UTF-8, standard JSON only (no NaN or Infinity), at most
    MAX_DEPTH levels deep and MAX_VALUES values."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(f"the request body is not UTF-8 (at byte {exc.start})", code=None) from None
    try:
        check_values(text, MAX_VALUES)
    except TooBig:
        raise ApiError(413, f"the request body holds more than {MAX_VALUES:,} JSON values") from None
    too_deep = invalid(f"the request body is nested more than {MAX_DEPTH} levels deep", code=None)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # JSONDecodeError, _parse_int, _refuse_constant
        raise invalid(f"the request body is not valid JSON: {exc}", code=None) from None
    if not isinstance(value, dict):
        raise invalid(f"the request body must be a JSON object, not {_kind(value)}", code=None)
    if depth_exceeds(value, MAX_DEPTH):
        raise too_deep
    return _Object(value)


def _asks(value: Any) -> bool:
    """Whether an optional field asks for something: not null, false, 0, empty, or "none"/"auto"
    (what clients send for tool_choice when they pass no tools)."""
    if isinstance(value, (dict, list, str)):
        return bool(value) and value not in ("none", "auto")
    return value is not None and value is not False and value != 0


def _refuse_unsupported(request: _Object, *choices: str) -> None:
    """400 for a field of UNSUPPORTED that asks for something, and for more than one choice
    (`choices`: "n", "best_of")."""
    for name, message in UNSUPPORTED.items():
        if _asks(request.get(name)):
            raise invalid(message, name, "unsupported_parameter")
    for name in choices:
        count = request.integer(name)
        if count is not None and count != 1:
            raise invalid(f"{name} must be 1: this server gives one choice per request", name, "unsupported_parameter")


def _model(request: _Object) -> str:
    model = request.required_string("model", limit=MAX_NAME_CHARS)
    if not model.strip():
        raise invalid("model must name a model", "model")
    return model


def _user(request: _Object) -> str | None:
    return request.string("user", limit=MAX_NAME_CHARS)


def _streaming(request: _Object) -> tuple[bool, bool]:
    """(stream, stream_options.include_usage)."""
    options = request.object("stream_options")
    include_usage = options.flag("include_usage") if options is not None else None
    return bool(request.flag("stream")), bool(include_usage)


def _texts(request: _Object, name: str, *, most: int, too_many: str, required: bool = False,
           tokens_refused: bool = False, non_empty: bool = False, limit: int | None = None) -> list[str]:
    """`name` as a list of strings: one string, or an array of at most `most`. Token arrays
    (integers, or arrays of them) are refused as such when `tokens_refused`."""
    value = request.required(name) if required else request.get(name)
    if value is None:
        return []
    single = isinstance(value, str)
    items = [value] if single else value
    if not isinstance(items, list):
        raise request.wrong(name, "a string or an array of strings")
    if tokens_refused and items and (isinstance(items[0], list) or
                                      (isinstance(items[0], int) and not isinstance(items[0], bool))):
        raise invalid(f"{name}: token arrays are not supported by this server; send text", name, "unsupported_parameter")
    if not items and required:
        raise invalid(f"{name} must not be empty", name)
    if len(items) > most:
        raise invalid(f"{name}: {too_many}", name)
    texts = []
    for i, item in enumerate(items):
        path = name if single else f"{name}[{i}]"
        if not isinstance(item, str):
            raise wrong_type(path, item, "a string")
        if non_empty and not item:
            raise invalid(f"{path} must not be empty", path)
        if limit is not None and len(item) > limit:
            raise invalid(f"{path} is longer than {limit:,} characters", path)
        texts.append(clean_text(item))
    return texts


# --- generation parameters -----------------------------------------------------------------------

PENALTIES = ("frequency_penalty", "presence_penalty")


def _params(request: _Object, fmt: ResponseFormat | None) -> GenerationParams:
    """The generation parameters of a chat or completion request, each checked as the CLI
    checks them (`check_params`), errors naming the request's field."""
    # max_completion_tokens replaces max_tokens in OpenAI's API; a client may send both.
    fields = {"max_tokens": "max_completion_tokens" if request.get("max_completion_tokens") is not None
              else "max_tokens"}
    values: dict[str, Any] = {}
    for key, kind in NUMBER_PARAMS.items():
        name = fields.setdefault(key, key)
        values[key] = request.integer(name) if kind is int else request.number(name)
    stop = _texts(request, "stop", most=MAX_STOPS, too_many=f"at most {MAX_STOPS} stop sequences",
                  non_empty=True, limit=MAX_STOP_CHARS)
    think, effort = _reasoning(request)
    params = GenerationParams(**values, stop=tuple(stop), think=think, reasoning_effort=effort,
                              extra=_penalties(request), response_format=fmt)
    for key, value in values.items():
        _check_param(key, value, fields[key])
    return params


def _check_param(key: str, value: Any, name: str) -> None:
    """check_params on one parameter, so that its error names the field."""
    if value is None:
        return
    try:
        check_params(GenerationParams(**{key: value}))
    except UsageError as exc:
        raise invalid(exc.message.replace(key, name, 1), name) from None


def _penalties(request: _Object) -> dict[str, float]:
    """frequency_penalty and presence_penalty, where not zero (a provider's own extras)."""
    low, high = PENALTY_RANGE
    extra = {}
    for name in PENALTIES:
        value = request.number(name)
        if value is not None and not low <= value <= high:
            raise invalid(f"{name} must be from {low:g} to {high:g}, not {value:g}", name)
        if value:
            extra[name] = value
    return extra


def _reasoning(request: _Object) -> tuple[bool | None, str | None]:
    """(think, reasoning_effort): reasoning_effort low/medium/high, or none/minimal for no
    reasoning; `think` (a modelctl extension) wins where both are given."""
    effort = request.string("reasoning_effort")
    think = request.flag("think")
    if effort in NO_REASONING:
        return (False if think is None else think), None
    if effort is not None and effort not in REASONING_EFFORTS:
        choices = ", ".join((*REASONING_EFFORTS, *NO_REASONING))
        raise invalid(f"reasoning_effort must be one of {choices}, not {effort!r}", "reasoning_effort")
    return think, effort


def _response_format(request: _Object) -> ResponseFormat | None:
    """text: None; json_object: any JSON object; json_schema: a value of its schema, which must
    be a valid JSON Schema (checked as `--schema` checks one)."""
    fmt = request.object("response_format")
    if fmt is None:
        return None
    kind = fmt.required_string("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat()
    if kind != "json_schema":
        raise invalid(f"response_format.type must be text, json_object or json_schema, not {kind!r}",
                      fmt.at("type"))
    spec = fmt.required_object("json_schema")
    spec.string("name", limit=64)
    spec.flag("strict")
    schema = spec.required_object("schema")
    try:
        check_schema(dict(schema.data), schema.path)
    except UsageError as exc:
        raise invalid(str(exc), schema.path) from None
    return ResponseFormat(schema=schema.data)


# --- messages ------------------------------------------------------------------------------------


def _messages(request: _Object) -> list[dict[str, Any]]:
    items = request.required("messages")
    if not isinstance(items, list):
        raise request.wrong("messages", "an array of messages")
    if not items:
        raise invalid("messages must hold at least one message", "messages")
    if len(items) > MAX_MESSAGES:
        raise invalid(f"messages: at most {MAX_MESSAGES:,} messages", "messages")
    names: dict[str, str] = {}  # a tool call's id → its tool, for the result that answers it
    return [_message(item, f"messages[{i}]", names) for i, item in enumerate(items)]


def _message(item: Any, path: str, names: dict[str, str]) -> dict[str, Any]:
    """One message as the conversation holds it. `name` is ignored, and so is an assistant's
    `reasoning_content` (a conversation keeps only the answers). An assistant's `tool_calls` and a
    tool's result (`tool_call_id`) take the conversation's form (modelctl.backends.base.Message)."""
    if not isinstance(item, dict):
        raise wrong_type(path, item, "an object")
    message = _Object(item, path)
    role = message.required_string("role")
    if role == "function" or _asks(message.get("function_call")):
        raise invalid(FUNCTIONS_MESSAGE, message.at("role" if role == "function" else "function_call"),
                      "unsupported_parameter")
    if role == "tool":
        call_id = message.required_string("tool_call_id", limit=MAX_NAME_CHARS)
        text, _ = _content(message, "tool")
        return {"role": "tool", "tool_call_id": call_id, "name": names.get(call_id, ""), "content": text}
    if role not in ROLES:
        raise invalid(f"{message.at('role')} must be one of {', '.join(ROLES)}, not {role!r}", message.at("role"))
    text, images = _content(message, role)
    turn: dict[str, Any] = {"role": ROLES[role], "content": text}
    if role == "assistant" and _asks(message.get("tool_calls")):
        calls = _calls(message)
        names.update((call["id"], call["name"]) for call in calls)
        turn["tool_calls"] = calls
    return ImageMessage(turn, images) if images else turn


def _calls(message: _Object) -> list[dict[str, str]]:
    """An assistant message's tool_calls, as {"id", "name", "arguments"}."""
    items = message.get("tool_calls")
    if not isinstance(items, list) or len(items) > MAX_TOOLS:
        raise message.wrong("tool_calls", f"an array of at most {MAX_TOOLS} tool calls")
    calls = []
    for call in message.objects("tool_calls", items):
        function = call.required_object("function")
        arguments = function.get("arguments")
        if isinstance(arguments, (dict, list)):  # some clients send the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        elif not isinstance(arguments, str):
            raise function.wrong("arguments", "a string of JSON")
        calls.append(ToolCall(call.required_string("id", limit=MAX_NAME_CHARS),
                              function.required_string("name", limit=MAX_NAME_CHARS), arguments).to_dict())
    return calls


def _tools(request: _Object) -> tuple[ToolSpec, ...]:
    """`tools`: function tools, each with a name (unique), a description and a JSON Schema."""
    items = request.get("tools")
    if items is None or items == []:
        return ()
    if not isinstance(items, list) or len(items) > MAX_TOOLS:
        raise request.wrong("tools", f"an array of at most {MAX_TOOLS} tools")
    specs: list[ToolSpec] = []
    for tool in request.objects("tools", items):
        if tool.required_string("type") != "function":
            raise invalid(f"{tool.at('type')}: only function tools are supported", tool.at("type"),
                          "unsupported_parameter")
        function = tool.required_object("function")
        name = function.required_string("name")
        if not TOOL_NAME.fullmatch(name) or any(spec.name == name for spec in specs):
            raise invalid(f"{function.at('name')}: {name!r} is not a tool name (1 to 64 letters, digits, _ . -, "
                          "each name once)", function.at("name"))
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise function.wrong("parameters", "a JSON Schema object")
        try:
            check_schema(parameters, function.at("parameters"))
        except UsageError as exc:
            raise invalid(str(exc), function.at("parameters")) from None
        specs.append(ToolSpec(name, function.string("description", limit=MAX_STOP_CHARS * 16) or "", parameters))
    return tuple(specs)


def _tool_choice(request: _Object, tools: tuple[ToolSpec, ...]) -> str | None:
    """`tool_choice`: "auto", "none", "required", or {"type": "function", "function": {"name"}}."""
    choice = request.get("tool_choice")
    if choice is None:
        return None
    if isinstance(choice, dict):
        named = _Object(choice, request.at("tool_choice")).required_object("function")
        choice = named.required_string("name")
        if not any(spec.name == choice for spec in tools):
            raise invalid(f"tool_choice names {choice!r}, which is not one of the tools", "tool_choice")
        return str(choice)
    if choice not in TOOL_CHOICES:
        raise invalid(f"tool_choice must be auto, none, required or a function, not {choice!r}", "tool_choice")
    if not tools:  # what clients send with no tools ("none", "auto") asks nothing
        if choice == "required":
            raise invalid("tool_choice is required, but no tools are given", "tool_choice")
        return None
    return str(choice)


def _content(message: _Object, role: str) -> tuple[str, tuple[ImagePart, ...]]:
    """The text of a message (its text parts joined by newlines) and its images (user only)."""
    content = message.get("content")
    if content is None and role == "assistant":
        return "", ()
    if isinstance(content, str):
        return clean_text(content), ()
    parts = message.required("content")
    if not isinstance(parts, list):
        raise message.wrong("content", "a string or an array of content parts")
    texts: list[str] = []
    images: list[ImagePart] = []
    for part in message.objects("content", parts):
        kind = part.required_string("type")
        if kind == "text" or (kind == "refusal" and role == "assistant"):
            texts.append(part.required_string(kind))
        elif kind == "image_url" and role == "user":
            image = part.required_object("image_url")
            images.append(_image(image.required_string("url"), image.at("url")))
        else:
            raise invalid(f"{part.at('type')}: {kind!r} parts are not supported in {role} messages here",
                          part.at("type"), "unsupported_parameter")
    return "\n".join(texts), tuple(images)


def _image(url: str, path: str) -> ImagePart:
    """An image given as a `data:` URL (base64): PNG, JPEG, WebP or GIF, at most IMAGE_LIMIT bytes.
    This server fetches nothing, so other URLs are refused."""
    header, comma, payload = url.partition(",")
    if not url[:5].lower() == "data:":
        raise invalid("images: only data: URLs are accepted (this server does not fetch images)", path)
    if not comma or not header.lower().endswith(";base64"):
        raise invalid("images: a data: URL must hold base64 data (data:image/png;base64,...)", path)
    if len(payload) // 4 * 3 > IMAGE_LIMIT:
        raise invalid(f"images: an image is larger than {IMAGE_LIMIT // 2**20} MB", path)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("images: the data: URL's base64 data is malformed", path) from None
    kind = sniff(data)
    if kind not in IMAGE_TYPES:
        names = ", ".join(EXTENSIONS[t] for t in IMAGE_TYPES)
        raise invalid(f"images: the data is not an image of {names}", path)
    return ImagePart(media_type=kind, data=data)


# --- responses -----------------------------------------------------------------------------------


def completion_id(kind: str) -> str:
    """A new response id: "chatcmpl-" (`kind` "chat") or "cmpl-" ("text"), then 24 hex digits."""
    if kind not in ID_PREFIXES:
        raise ValueError(f"completion_id: kind is one of {', '.join(ID_PREFIXES)}, not {kind!r}")
    return f"{ID_PREFIXES[kind]}-{secrets.token_hex(12)}"


def finish_reason_json(reason: str | None) -> str:
    """A finish reason as OpenAI's objects allow it. "interrupted" (the generation was stopped)
    is "stop": whether the answer is then sent at all is the caller's to decide. None (a backend
    that told none) is "stop" too."""
    if reason in FINISH_REASONS:
        return reason
    return FINISH_STOP  # FINISH_INTERRUPTED, None, and a provider's own names


def _finish(reason: str | None) -> str | None:
    """A stream chunk's finish reason: None until the last."""
    return None if reason is None else finish_reason_json(reason)


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    """OpenAI's `usage`: the three counts, and the cached and reasoning tokens where known."""
    if usage is None:
        return None
    out: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.prompt_tokens + usage.completion_tokens}
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def _completion(rid: str, obj: str, created: int, model: str, content: dict[str, Any] | None,
                finish: str | None, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """An object of type `obj` with one choice holding `content` and the finish reason `finish`
    (as sent), or no choice (`content` None)."""
    choices = [] if content is None else [{"index": 0, **content, "logprobs": None, "finish_reason": finish}]
    out = {"id": rid, "object": obj, "created": created, "model": model, "choices": choices}
    if extra is not None:
        out["modelctl"] = extra
    return out


def tool_calls_json(calls: Sequence[ToolCall], *, indexed: bool = False) -> list[dict[str, Any]]:
    """OpenAI's `tool_calls`: {"id", "type": "function", "function": {"name", "arguments"}}, with
    "index" in a stream's delta."""
    return [{**({"index": i} if indexed else {}), "id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}} for i, call in enumerate(calls)]


def chat_chunk(rid: str, created: int, model: str, *, text: str = "", reasoning: str = "", role: bool = False,
               finish_reason: str | None = None, usage: Usage | None = None,
               extra: Mapping[str, Any] | None = None, tool_calls: Sequence[ToolCall] = ()) -> dict[str, Any]:
    """A `chat.completion.chunk`. The first of a stream has `role` (its delta: role and content
    ""); a chunk with neither text, reasoning, role, tool calls nor finish reason has no choices
    (the usage chunk of `stream_options.include_usage`, which also carries `extra`). Tool calls
    come whole, each with its index, in one delta."""
    content = None
    if text or reasoning or role or tool_calls or finish_reason is not None:
        delta: dict[str, Any] = {"role": "assistant", "content": text} if role else {"content": text} if text else {}
        if reasoning:
            delta["reasoning_content"] = reasoning
        if tool_calls:
            delta["tool_calls"] = tool_calls_json(tool_calls, indexed=True)
        content = {"delta": delta}
    chunk = _completion(rid, "chat.completion.chunk", created, model, content, _finish(finish_reason), extra)
    if usage is not None:
        chunk["usage"] = usage_json(usage)
    return chunk


def chat_response(rid: str, created: int, model: str, *, text: str, reasoning: str | None, finish_reason: str | None,
                  usage: Usage | None, extra: Mapping[str, Any] | None,
                  tool_calls: Sequence[ToolCall] = ()) -> dict[str, Any]:
    """A `chat.completion` with one choice; the reasoning, if any, is `message.reasoning_content`;
    the tools the model called are `message.tool_calls` (the content null when it wrote none)."""
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if tool_calls else "")}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls_json(tool_calls)
    response = _completion(rid, "chat.completion", created, model, {"message": message},
                           finish_reason_json(finish_reason), extra)
    response["usage"] = usage_json(usage)
    return response


def text_chunk(rid: str, created: int, model: str, *, text: str = "", finish_reason: str | None = None,
               usage: Usage | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A streamed `text_completion`: as chat_chunk, with the text in `choices[0].text`."""
    content = {"text": text} if text or finish_reason is not None else None
    chunk = _completion(rid, "text_completion", created, model, content, _finish(finish_reason), extra)
    if usage is not None:
        chunk["usage"] = usage_json(usage)
    return chunk


def text_response(rid: str, created: int, model: str, *, text: str, finish_reason: str | None, usage: Usage | None,
                  extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """A `text_completion` with one choice (with `echo`, `text` includes the prompt)."""
    response = _completion(rid, "text_completion", created, model, {"text": text}, finish_reason_json(finish_reason),
                           extra)
    response["usage"] = usage_json(usage)
    return response


def embeddings_response(model: str, vectors: Sequence[Sequence[float]], prompt_tokens: int, encoding_format: str,
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The embeddings `list`: one `embedding` per input, as floats or (encoding_format
    "base64") as base64 of little-endian float32, as OpenAI sends them."""
    data = [{"object": "embedding", "index": i,
             "embedding": _base64_floats(v) if encoding_format == "base64" else list(v)}
            for i, v in enumerate(vectors)]
    out: dict[str, Any] = {"object": "list", "data": data, "model": model,
                           "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
    if extra is not None:
        out["modelctl"] = extra
    return out


def _base64_floats(vector: Sequence[float]) -> str:
    packed = array.array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


# One encoder for every event: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)


def encode(data: Mapping[str, Any]) -> bytes:
    """`data` as compact JSON in UTF-8 (a lone surrogate in its text becomes U+FFFD)."""
    text = _ENCODER.encode(data)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return clean_surrogates(text).encode("utf-8")


def sse(data: Mapping[str, Any] | str) -> bytes:
    """One server-sent event: `data: JSON` (or the text as it is: `sse("[DONE]")`), then a blank line."""
    if isinstance(data, str):
        if "\n" in data or "\r" in data:
            raise ValueError("an event's text is one line")
        return b"data: " + data.encode("utf-8") + b"\n\n"
    return b"data: " + encode(data) + b"\n\n"

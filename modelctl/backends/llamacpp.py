"""Local models in-process through llama.cpp (`llama-cpp-python`), from GGUF files.

What this backend does that `Llama.create_chat_completion` does not:

- the prompt is rendered by modelctl's template layer and tokenized here: the tokens are those of
  the whole prompt text, except that control tokens come only from the template's own text, so a
  user who types `<end_of_turn>` gets the characters, not the control token;
- BOS exactly once, following the model's `add_bos_token` flag;
- generation stops on the model's end-of-generation tokens and on the template's stop strings,
  and streamed text that might be the start of a stop string is held back until it is not;
- the loaded model and its evaluated tokens stay between turns: each turn evaluates only the
  tokens after the longest prefix it shares with what is already in the KV cache. The tokens the
  model generated for an answer are reused when that answer comes back in the next prompt and
  they fit the prompt's tokens around it, so a re-tokenization that differs cannot break the
  shared prefix; so are the tokens of a tool call, wherever the template writes the call again;
- with `keep_states` bytes (a server's several clients), the KV state of a conversation is saved
  before another conversation's prompt replaces it, and restored when its next turn shares more
  with it than with the live cache (`kv_states`);
- with tools (`GenerationParams.tools`), the template renders them and the answer is read for
  calls in the template family's format (`templates.tool_calls`): text streams, call spans are
  held back, and the final chunk carries the calls. The format's markers that are control tokens
  are written into the text for the parser. `tool_choice` "required" or a tool's name forces a
  call with a grammar of the format's call syntax around the tool's schema; "none" renders no
  tools.

`llama_cpp` is imported only when a model is loaded.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from modelctl.backends import extra_buffers, kv_states, llama_vision
from modelctl.backends.base import (
    FINISH_LENGTH,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    TOOL_CHOICES,
    BaseBackend,
    Chunk,
    GenerationParams,
    Message,
    Timings,
    ToolCall,
    ToolSpec,
    Usage,
    template_variables,
)
from modelctl.backends.hardware import host_cpu, llama_build
from modelctl.backends.images import images_of
from modelctl.backends.llama_grammar import json_grammar, tool_call_grammar
from modelctl.backends.llama_lib import (
    clear_log,
    gpu_name,
    gpu_offload_supported,
    import_llama_cpp,
    load_failure,
)
from modelctl.backends.llama_options import context_size, split_options
from modelctl.backends.params import param_table, request_fields
from modelctl.backends.stops import StopMatcher
from modelctl.config import get_paths
from modelctl.errors import BackendError, ContextFull, ModelFileError, UsageError
from modelctl.gguf import GGUFFile, check_gguf
from modelctl.templates.tool_calls import ToolFormat, format_name_of, parser_for, tool_format

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_cpp import llama_vocab_p

    from modelctl.templates.types import ChatTemplate, RenderedPrompt

# Sampling defaults (llama.cpp's own), used where neither the registry, the config nor a flag says.
SAMPLING_DEFAULTS = {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "repeat_penalty": 1.0}
# The `Llama.generate` argument of each sampling parameter; max_tokens, seed and stop are no
# arguments of it: the generation loop applies them.
SAMPLING_ARGS = param_table(temperature="temp", top_p="top_p", top_k="top_k", repeat_penalty="repeat_penalty",
                            max_tokens=None, seed=None, stop=None)
# Answers whose generated tokens are remembered for reuse in later prompts.
_REMEMBERED_ANSWERS = 32

# Token attributes (llama.h `llama_token_attr`).
_ATTR_CONTROL = 1 << 3
_ATTR_PARSED_SPECIAL = (1 << 0) | _ATTR_CONTROL  # UNKNOWN | CONTROL: found in text only by special parsing
_ATTR_LSTRIP, _ATTR_RSTRIP = 1 << 7, 1 << 8  # the token swallows the whitespace before / after it
_C_SPACE = " \t\n\v\f\r"  # what C's isspace() matches, as llama.cpp strips it


def _token_piece(llama_cpp: ModuleType, vocab: llama_vocab_p, token: int, *, special: bool) -> bytes:
    """The text of one token (`special`: control tokens written out too)."""

    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, special)
        if n >= 0:
            return buf.raw[:n]
        size = -n


# gpt-oss's harmony markers are control tokens, which an answer's text otherwise leaves out;
# written out, they let the chat session part the reasoning (the analysis channel) from the
# answer (the final channel).
SHOWN_CONTROL_TOKENS = frozenset({b"<|channel|>", b"<|message|>", b"<|start|>", b"<|end|>", b"<|constrain|>"})


def generated_piece(llama_cpp: ModuleType, vocab: llama_vocab_p, token: int, shown: frozenset[bytes] = SHOWN_CONTROL_TOKENS) -> bytes:
    """The text of a generated token: a control token's is empty, but for those in `shown`."""
    piece = _token_piece(llama_cpp, vocab, token, special=False)
    if not piece:
        written = _token_piece(llama_cpp, vocab, token, special=True)
        if written in shown:
            return written
    return piece


@dataclass(frozen=True)
class _ToolUse:
    """The tools of one answer: the format the model writes calls in, its markers that are one
    control token of this model (written into the text for the parser), and the tools a call is
    forced among (none: the model may call one or answer)."""

    format: ToolFormat
    tokens: Mapping[str, int]
    forced: tuple[ToolSpec, ...] = ()


@dataclass
class _Run:
    """The prompt text between two control tokens, and where remembered answers lie in it."""

    strip_left: bool = False  # the control token before it swallows the whitespace after it
    parts: list[str] = field(default_factory=list)
    answers: list[tuple[int, int, tuple[int, ...]]] = field(default_factory=list)
    size: int = 0

    def add(self, text: str, answer_tokens: tuple[int, ...] | None = None) -> None:
        if answer_tokens is not None:
            self.answers.append((self.size, self.size + len(text), answer_tokens))
        self.parts.append(text)
        self.size += len(text)

    def finish(self, *, strip_right: bool) -> tuple[str, list[tuple[int, int, tuple[int, ...]]]]:
        """The text (whitespace swallowed by the control tokens around it removed, as llama.cpp
        does) and the answers' spans in it."""
        text = "".join(self.parts)
        lo = len(text) - len(text.lstrip(_C_SPACE)) if self.strip_left else 0
        hi = lo + len(text[lo:].rstrip(_C_SPACE)) if strip_right else len(text)
        return text[lo:hi], [(a - lo, b - lo, t) for a, b, t in self.answers if lo <= a and b <= hi]


class LlamaCppBackend(BaseBackend):
    """A GGUF model loaded in this process.

    `template` is a template from `modelctl.templates.resolve_template`; it may be replaced
    between turns (`/template`). Loading is lazy (first `chat` or `load()`); `count_tokens` before
    that reads only the file's vocabulary.
    """

    kind = "llama.cpp"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        template: ChatTemplate | None = None,
        model_id: str | None = None,
        n_ctx: int | None = None,
        n_gpu_layers: int | None = None,
        n_threads: int | None = None,
        options: Mapping[str, Any] | None = None,
        gguf: GGUFFile | None = None,
        keep_states: int = 0,
    ) -> None:
        self.gguf = gguf or check_gguf(path)
        self.path = Path(path)
        self.template: ChatTemplate | None = template
        self.model_id = model_id or self.path.name
        md = self.gguf.metadata
        self.n_ctx_train = md.get(f"{self.gguf.architecture}.context_length")
        self.n_gpu_layers = n_gpu_layers
        self.n_threads = n_threads
        options = dict(options or {})
        # modelctl's own load option: extra buffer types on, off, or decided here (None).
        self.extra_buffers_override = extra_buffers.parse_override(options.pop(extra_buffers.OPTION, None))
        self.buffers: extra_buffers.BufferChoice | None = None
        self.load_options, self.sample_options = split_options(options, self.gguf.metadata)
        # `-o n_ctx=N` is --ctx N: one context size, the one the prompt is checked against.
        option_ctx = self.load_options.pop("n_ctx", None)
        self.ctx_clamped_from: int | None = None
        self.n_ctx = self._context_size(n_ctx if n_ctx is not None else option_ctx)
        self.load_s: float | None = None
        self._load_s_unreported = 0.0
        self._llm: "Llama | None" = None
        self._embedder: "Llama | None" = None
        self._vocab: "Llama | None" = None  # the vocabulary alone, for counting before a load
        self._pieces: dict[int, bytes] = {}
        self._answers: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._calls: OrderedDict[str, tuple[int, ...]] = OrderedDict()  # pieces of answers that called tools
        self._dirty = False  # the KV state may not match input_ids (an interrupted eval)
        # Saved states of other conversations (keep_states bytes; 0: none), and the fewest
        # evaluated tokens a trim of the live cache may keep (all, after some restores).
        self._states = kv_states.KvStates(keep_states)
        self._floor = 0
        self._live_prompt = 0  # tokens of the live cache that were the last prompt (the rest: its answer)
        self._whole_states = True  # a saved state restores exactly only in whole (set at load)
        self.mmproj: Path | None = None  # the vision projector images go through (llama_vision)
        self._projector: Any = None
        self.last_prompt_tokens: list[int] = []  # for --debug and tests
        self.last_rendered: RenderedPrompt | None = None
        self.last_tool_problems: tuple[str, ...] = ()  # call spans of the last answer left as text, and why

    def _context_size(self, wanted: int | None) -> int:
        """The context window to load (`llama_options.context_size`, as `tokens` and `-m auto`
        reckon it); `ctx_clamped_from` says what was asked for when it is more than trained."""
        size = context_size(wanted, self.n_ctx_train)
        if wanted and size < wanted:
            self.ctx_clamped_from = wanted
        return size

    # --- loading ------------------------------------------------------------------------------

    def _gpu_layers(self) -> int:
        if self.n_gpu_layers is not None:
            return self.n_gpu_layers
        return -1 if gpu_offload_supported() else 0

    def _construct(self, **overrides: Any) -> "Llama":
        llama_cpp = import_llama_cpp()
        kwargs: dict[str, Any] = {
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self._gpu_layers(),
            "n_threads": self.n_threads,
            # A full-size sliding-window cache, so a prefix of the conversation can be kept and
            # extended on the next turn (Gemma 2/3 and other SWA models).
            "swa_full": True,
            "verbose": False,
        }
        kwargs.update(self.load_options)
        kwargs.update(overrides)
        adapter = kwargs.pop("lora_path", None)  # applied below, checked
        clear_log()  # what llama.cpp logs from here on explains a failure
        options_hint = f"check the options {', '.join(sorted(self.load_options))}" if self.load_options else None
        buffers = self.buffer_choice()
        try:
            with extra_buffers.model_params(llama_cpp, use_extra_bufts=buffers.enabled):
                llm: Llama = llama_cpp.Llama(str(self.path), **kwargs)
        except (TypeError, AttributeError) as exc:  # a value of a type llama-cpp-python does not take
            raise UsageError(f"llama.cpp does not take these options: {exc}", hint=options_hint) from exc
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFileError(f"{self.path}: llama.cpp cannot load this model: {load_failure(str(exc))}",
                                 hint=options_hint) from exc
        if adapter:
            self._apply_adapter(llama_cpp, llm, adapter, kwargs.get("lora_scale", 1.0))
        return llm

    def buffer_choice(self, probe: Callable[[list[str]], extra_buffers.ProbeResult] = extra_buffers.run_probe,
                      ) -> extra_buffers.BufferChoice:
        """Whether this model loads with llama.cpp's extra buffer types (AMX, repacking): decided
        once, by probing in a child process where the AMX path might crash (see extra_buffers;
        `probe` runs that child)."""
        if self.buffers is None:
            llama_cpp = import_llama_cpp()
            build = llama_build(llama_cpp)
            choice = extra_buffers.choose(
                self.path, build=build, cpu=host_cpu(), build_id=extra_buffers.build_identity(llama_cpp),
                cache_dir=get_paths().cache_dir, override=self.extra_buffers_override, probe=probe,
            )
            if not choice.enabled and not extra_buffers.supports_choice(llama_cpp):
                raise BackendError(
                    f"llama.cpp's extra buffer types are not safe here ({choice.reason}), and llama-cpp-python "
                    f"{getattr(llama_cpp, '__version__', '?')} cannot turn them off",
                    hint=f"rebuild it without AMX: {extra_buffers.REBUILD_WITHOUT_AMX}",
                )
            self.buffers = choice
        return self.buffers

    def _apply_adapter(self, llama_cpp: ModuleType, llm: "Llama", path: str, scale: float) -> None:
        """Apply a LoRA adapter as `Llama(lora_path=...)` would, except that an adapter llama.cpp
        refuses (another architecture, other shapes) is an error: llama-cpp-python goes on with
        the null adapter and crashes the process."""

        adapter = llama_cpp.llama_adapter_lora_init(llm._model.model, path.encode("utf-8"))
        if adapter:
            llm._stack.callback(llama_cpp.llama_adapter_lora_free, adapter)  # before the model
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            if not llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, adapters, 1, (ctypes.c_float * 1)(scale)):
                return
        llm.close()
        raise ModelFileError(f"{path}: llama.cpp cannot apply this LoRA adapter to {self.path.name}: "
                             f"{load_failure('no reason given')}")

    def load(self) -> "Llama":
        """Load the model for generation (once)."""
        if self._llm is None:
            t0 = time.perf_counter()
            self._llm = self._construct()
            self.load_s = time.perf_counter() - t0
            self._load_s_unreported = self.load_s
            self._whole_states = _states_whole_only(import_llama_cpp(), self._llm)
        return self._llm

    @property
    def keep_states(self) -> int:
        """Bytes of saved KV states kept for other conversations (0: none are saved)."""
        return self._states.max_bytes

    @keep_states.setter
    def keep_states(self, value: int) -> None:
        self._states.max_bytes = value

    @property
    def context_window(self) -> int:
        """Tokens a prompt and its answer may take. Once loaded: the loaded context (llama.cpp
        may round its size up; llama-cpp-python's token buffer has the size asked for)."""
        if self._llm is None:
            return self.n_ctx
        return min(self._llm.n_ctx(), len(self._llm.input_ids))

    def forget(self) -> None:
        """Drop the evaluated tokens and the saved states: the next prompt is evaluated from its
        first token."""
        self._dirty = True
        self._states.clear()

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def _tokenizer(self) -> "Llama":
        """The loaded model, else the file's vocabulary alone (no weights: fast, small), which
        tokenizes the same; so counting a prompt does not load the model."""
        if self._llm is not None:
            return self._llm
        if self._vocab is None:
            self._vocab = self._construct(vocab_only=True, n_gpu_layers=0)
        return self._vocab

    @property
    def _loaded(self) -> "Llama":
        """The model loaded for generation, where only a loaded model can be (after `load()`)."""
        assert self._llm is not None, "the model is not loaded"
        return self._llm

    def close(self) -> None:
        for llm in (self._llm, self._embedder, self._vocab):
            if llm is not None:
                llm.close()  # frees the vision projector's context too
        self._llm = self._embedder = self._vocab = self._projector = None
        self._states.clear()

    # --- description ----------------------------------------------------------------------------

    @property
    def gpu_layers_in_use(self) -> int:
        """Layers on the GPU (0: CPU only)."""
        n_layers = self.gguf.metadata.get(f"{self.gguf.architecture}.block_count") or 0
        wanted = self._gpu_layers()
        if wanted < 0:
            return n_layers + 1  # every repeating layer plus the output layer
        return min(wanted, n_layers + 1)

    def compute_description(self) -> str:
        """'CPU' or 'GPU (CUDA, 19/19 layers)', then the buffer path once decided, for --debug
        and /info."""
        where = self._compute_place()
        return f"{where}, {self.buffers.describe()}" if self.buffers is not None else where

    def _compute_place(self) -> str:
        layers = self.gpu_layers_in_use
        if layers == 0:
            return "CPU"
        llama_cpp = import_llama_cpp()
        if not llama_cpp.llama_supports_gpu_offload():
            return "CPU (this llama.cpp build has no GPU support)"
        total = (self.gguf.metadata.get(f"{self.gguf.architecture}.block_count") or 0) + 1
        return f"GPU ({gpu_name(llama_cpp)}, {layers}/{total} layers)"

    def describe(self) -> dict[str, Any]:
        md = self.gguf.metadata
        info: dict[str, Any] = {
            "model_id": self.model_id,
            "kind": self.kind,
            "file": str(self.path),
            "file_size": self.gguf.file_size,
            "name": md.get("general.name"),
            "architecture": self.gguf.architecture,
            "context_length": self.context_window,
            "context_length_trained": self.n_ctx_train,
            "compute": self.compute_description(),
            "extra_buffers": None if self.buffers is None else {"enabled": self.buffers.enabled,
                                                                 "reason": self.buffers.reason},
            "threads": self.n_threads,
            "template": getattr(self.template, "name", None),
            "template_source": getattr(self.template, "source", None),
            "bos_token": md.get("tokenizer.ggml.bos_token"),
            "eos_token": md.get("tokenizer.ggml.eos_token"),
            "add_bos_token": md.get("tokenizer.ggml.add_bos_token"),
        }
        if self.load_s is not None:
            info["load_s"] = round(self.load_s, 3)
        if self._llm is not None:
            info["threads"] = self._llm.n_threads
            info["cached_tokens"] = self._llm.n_tokens
        if self._states.enabled():
            info["saved_states"] = {"count": len(self._states), "bytes": self._states.nbytes,
                                    "max_bytes": self._states.max_bytes}
        try:
            import llama_cpp  # noqa: PLC0415 (llama_cpp: optional)

            info["llama_cpp_python"] = llama_cpp.__version__
        except ImportError:
            pass
        if self.load_options:
            info["options"] = dict(self.load_options)
        return {k: v for k, v in info.items() if v is not None}

    # --- tokenization -----------------------------------------------------------------------------

    @property
    def bos_text(self) -> str | None:
        return self.gguf.metadata.get("tokenizer.ggml.bos_token")

    @property
    def eos_text(self) -> str | None:
        return self.gguf.metadata.get("tokenizer.ggml.eos_token")

    def render(self, messages: Sequence[Message], variables: Mapping[str, Any] | None = None) -> RenderedPrompt:
        """The template layer's rendering of `messages`, ready for a generation prompt."""
        if self.template is None:
            raise BackendError("no chat template chosen for this model")
        return self.template.render(
            list(messages), add_generation_prompt=True, bos_token=self.bos_text, eos_token=self.eos_text,
            variables=variables,
        )

    def tokenize_rendered(self, rendered: RenderedPrompt) -> list[int]:
        """The tokens of a rendered prompt: those that tokenizing its whole text with special-token
        parsing gives, except that control tokens come only from the template's own text. BOS
        exactly once.

        The prompt is cut at the control tokens found in template segments; each run of text
        between two of them (template text and message content alike) is tokenized in one call
        without special-token parsing. That is what llama.cpp does with a whole string: it splits
        it at special tokens and tokenizes each piece of text on its own (an SPM vocabulary's
        space prefix at the start of each), so BPE merges across a template/content boundary and
        the space prefix come out the same. A message holding a remembered answer gets the tokens
        generated for it where they fit the run's tokens (see `_splice_answers`)."""
        llama_cpp = import_llama_cpp()
        llm = self._tokenizer
        ids: list[int] = []
        run = _Run()
        for seg in rendered.segments:
            if not seg.special:
                run.add(seg.text, self._answers.get(seg.text))
                continue
            pos = 0
            for start, end, token, attr in self._control_tokens(llama_cpp, seg.text):
                run.add(seg.text[pos:start])
                ids.extend(self._tokenize_run(llama_cpp, run, strip_right=bool(attr & _ATTR_LSTRIP)))
                ids.append(token)
                run, pos = _Run(strip_left=bool(attr & _ATTR_RSTRIP)), end
            run.add(seg.text[pos:])
        ids.extend(self._tokenize_run(llama_cpp, run, strip_right=False))
        bos = llm.token_bos()
        if bos >= 0 and llm._model.add_bos_token():
            while ids[:2] == [bos, bos]:
                del ids[0]
            if ids[:1] != [bos]:
                ids.insert(0, bos)
        return ids

    def _control_tokens(self, llama_cpp: ModuleType, text: str) -> list[tuple[int, int, int, int]]:
        """(start, end, token, attributes) of each token in the template text `text` that only
        special-token parsing finds: control tokens (and the unknown token, where written out)."""
        vocab = self._tokenizer._model.vocab
        found: list[tuple[int, int, int, int]] = []
        pos = 0
        for token in self._tokenizer.tokenize(text.encode("utf-8"), add_bos=False, special=True):
            attr = llama_cpp.llama_vocab_get_attr(vocab, token)
            if not attr & _ATTR_PARSED_SPECIAL:
                continue
            piece = _token_piece(llama_cpp, vocab, token, special=True).decode("utf-8", errors="replace")
            start = text.find(piece, pos) if piece else -1
            if start >= 0:  # else not written in the text (an unknown character): plain text
                found.append((start, start + len(piece), token, attr))
                pos = start + len(piece)
        return found

    def _tokenize_run(self, llama_cpp: ModuleType, run: "_Run", *, strip_right: bool) -> list[int]:
        text, answers = run.finish(strip_right=strip_right)
        if not text:
            return []
        if self._calls:
            answers = _apart([*answers, *self._calls_in(text)])
        tokens = self._tokenizer.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return self._splice_answers(llama_cpp, tokens, text, answers) if answers else tokens

    def _calls_in(self, text: str) -> list[tuple[int, int, tuple[int, ...]]]:
        """Where the pieces of remembered tool calls stand in the run `text` (a template writes a
        call as its own text, not as a message's content), with their tokens."""
        found = []
        for piece, tokens in self._calls.items():
            at = text.find(piece)
            while at >= 0:
                found.append((at, at + len(piece), tokens))
                at = text.find(piece, at + len(piece))
        return found

    def _splice_answers(self, llama_cpp: ModuleType, tokens: list[int], text: str,
                        answers: list[tuple[int, int, tuple[int, ...]]]) -> list[int]:
        """`tokens` (of the run `text`) with the span of each remembered answer replaced by the
        tokens generated for it, where `tokens` has a boundary at both ends of the span: the KV
        cache holds the generated tokens, so the next turn's prompt shares them. Elsewhere the
        run's own tokens stay (correct, only evaluated again)."""
        pieces = [self._piece(llama_cpp, t) for t in tokens]
        raw = text.encode("utf-8")
        lead = sum(map(len, pieces)) - len(raw)  # 1: the SPM space prefix
        if lead not in (0, 1) or not b"".join(pieces).endswith(raw):
            return tokens
        index, offset = {}, -lead  # byte offset in `raw` where a token starts -> its index
        for i, piece in enumerate(pieces):
            index[offset] = i
            offset += len(piece)
        index[offset] = len(tokens)
        spliced = list(tokens)
        for start, end, known in reversed(answers):  # from the end: earlier indexes stay valid
            lo, hi = index.get(len(text[:start].encode("utf-8"))), index.get(len(text[:end].encode("utf-8")))
            if lo is not None and hi is not None:
                spliced[lo:hi] = known
        return spliced

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.tokenize_rendered(self.render(messages)))

    def count_text(self, text: str) -> int:
        """Tokens of `text` as `complete` (and an embedding) reads it: no template."""
        return len(_text_tokens(self._tokenizer, text))

    def _piece(self, llama_cpp: ModuleType, token: int) -> bytes:
        """The text of `token` as generated (control tokens: empty, but harmony's markers), cached."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = generated_piece(llama_cpp, self._loaded._model.vocab, token)
        return piece

    def _stop_token_ids(self, llama_cpp: ModuleType, rendered: RenderedPrompt | None,
                        stops: Sequence[str]) -> frozenset[int]:
        """End-of-generation tokens, the template's stop token ids that are stops in this model's
        vocabulary, and every stop string that is a single control token (its text never reaches
        the detokenized stream)."""
        llm = self._loaded
        template_stops = tuple(getattr(rendered, "stop", None) or ())
        ids = {t for t in (getattr(rendered, "stop_token_ids", None) or ())
               if self._is_stop_token(llama_cpp, t, template_stops)}
        eos = llm.token_eos()
        if eos >= 0:
            ids.add(eos)
        for stop in stops:
            toks = llm.tokenize(stop.encode("utf-8"), add_bos=False, special=True)
            if len(toks) == 1 and not self._piece(llama_cpp, toks[0]):
                ids.add(toks[0])
        return frozenset(ids)

    def _is_stop_token(self, llama_cpp: ModuleType, token: int, stops: Sequence[str]) -> bool:
        """Whether a template's stop token id means a stop in this model's vocabulary: an
        end-of-generation or control token, or one whose text is a stop string. (Ids belong to a
        vocabulary: Llama 3's <|eot_id|>, 128009, is "Menus" in Gemma's.)"""
        vocab = self._loaded._model.vocab
        if not 0 <= token < llama_cpp.llama_vocab_n_tokens(vocab):
            return False
        if llama_cpp.llama_vocab_is_eog(vocab, token) or llama_cpp.llama_vocab_get_attr(vocab, token) & _ATTR_CONTROL:
            return True
        return _token_piece(llama_cpp, vocab, token, special=True).decode("utf-8", errors="replace") in stops

    def _remember(self, llama_cpp: ModuleType, tokens: Sequence[int]) -> None:
        """Keep the tokens of a finished answer, keyed by its text, and by its text without
        surrounding whitespace (templates often trim content) where whole tokens make that up.

        Only plain-text tokens: an answer holding a control token is not kept, so a remembered
        sequence is always a valid plain-text tokenization of its key, whoever's message that
        text later appears in."""
        vocab = self._loaded._model.vocab
        if any(llama_cpp.llama_vocab_is_control(vocab, t) for t in tokens):
            return
        _keep(self._answers, self._variants(llama_cpp, tokens))

    def _remember_call(self, llama_cpp: ModuleType, tokens: Sequence[int]) -> None:
        """Keep the tokens of an answer that called tools, piece by piece between its control
        tokens (the format's markers), as `_remember` keeps an answer: the next prompt holds the
        call as the template writes it, where these tokens can stand if the text is the same."""
        vocab = self._loaded._model.vocab
        start = 0
        for i in range(len(tokens) + 1):
            if i == len(tokens) or llama_cpp.llama_vocab_is_control(vocab, tokens[i]):
                # (white space alone is everywhere in a prompt: no piece of a call)
                pieces = self._variants(llama_cpp, tokens[start:i])
                _keep(self._calls, {text: part for text, part in pieces.items() if text.strip()})
                start = i + 1

    def _variants(self, llama_cpp: ModuleType, tokens: Sequence[int]) -> dict[str, tuple[int, ...]]:
        """`tokens` by their text, whole and without whitespace-only tokens at either end."""
        variants = {}
        for lo, hi in ((0, len(tokens)), self._trim(llama_cpp, tokens, 1, 0), self._trim(llama_cpp, tokens, 1, 1)):
            part = tuple(tokens[lo:hi])
            if part:
                variants[self._text(llama_cpp, part)] = part
        return variants

    def _text(self, llama_cpp: ModuleType, tokens: Sequence[int]) -> str:
        return b"".join(self._piece(llama_cpp, t) for t in tokens).decode("utf-8", errors="replace")

    def _trim(self, llama_cpp: ModuleType, tokens: Sequence[int], left: int, right: int) -> tuple[int, int]:
        """Bounds of `tokens` without whitespace-only tokens at the left/right end."""
        lo, hi = 0, len(tokens)
        while left and lo < hi and not self._piece(llama_cpp, tokens[lo]).strip():
            lo += 1
        while right and hi > lo and not self._piece(llama_cpp, tokens[hi - 1]).strip():
            hi -= 1
        return lo, hi

    # --- generation ------------------------------------------------------------------------------

    def _sampling(self, params: GenerationParams, tools: _ToolUse | None = None) -> dict[str, Any]:
        kw = dict(self.sample_options)
        extra_load, extra_sample = split_options(params.extra) if params.extra else ({}, {})
        if extra_load:
            raise UsageError(
                f"option(s) {', '.join(sorted(extra_load))} apply when the model is loaded; "
                "give them with -o when starting the chat"
            )
        kw.update(extra_sample)
        # A parameter set by name (registry, config, flag, /set) wins over -o; -o over defaults.
        named, _ = request_fields(params, SAMPLING_ARGS)
        kw.update(named)
        for name, key in SAMPLING_ARGS.items():
            if key is not None:
                kw.setdefault(key, SAMPLING_DEFAULTS[name])
        vocab = self._loaded._model.vocab
        answer = params.response_format.json_schema() if params.response_format is not None else None
        if tools is not None and (tools.forced or answer is not None):
            # a forced call; or, a schema asked for, a call or the answer the schema describes
            kw["grammar"] = tool_call_grammar(tools.format, tools.forced or params.tools, vocab, tools.tokens,
                                              answer=None if tools.forced else answer)
        elif answer is not None:
            kw["grammar"] = json_grammar(answer, vocab)
        return kw

    def _tool_use(self, params: GenerationParams) -> _ToolUse | None:
        """What the tools of `params` ask of this answer (None: no tools rendered or read)."""
        choice = params.tool_choice or "auto"
        names = [tool.name for tool in params.tools]
        if choice not in TOOL_CHOICES and choice not in names:
            given = f"the tools given are {', '.join(names)}" if names else "no tools were given"
            raise UsageError(f"tool choice {choice!r} names no tool: {given}")
        if choice == "required" and not names:
            raise UsageError("tool choice 'required' needs tools to call: no tools were given")
        if not names or choice == "none":
            return None
        fmt = tool_format(format_name_of(self.template))
        if choice == "auto":
            forced: tuple[ToolSpec, ...] = ()
        else:
            forced = tuple(tool for tool in params.tools if choice in ("required", tool.name))
        return _ToolUse(fmt, self._control_markers(fmt.markers), forced)

    def _control_markers(self, markers: Sequence[str]) -> dict[str, int]:
        """The markers that are one control token of this model's vocabulary, and their ids."""
        llama_cpp = import_llama_cpp()
        llm = self._loaded
        found = {}
        for marker in markers:
            tokens = llm.tokenize(marker.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) == 1 and llama_cpp.llama_vocab_get_attr(llm._model.vocab, tokens[0]) & _ATTR_CONTROL:
                found[marker] = tokens[0]
        return found

    def _prepare(self, prompt: list[int]) -> int:
        """Keep the longest evaluated prefix shared with `prompt`, the live cache's or a saved
        state's (restored first, the live cache saved); return how many tokens of the prompt
        remain to evaluate. At least one is evaluated, for fresh logits."""
        llm = self._loaded
        wanted = tuple(prompt)
        live = self._live_tokens()
        keep = kv_states.usable_prefix(live, self._floor, wanted)
        state, restorable = self._states.best(wanted)
        if state is not None and restorable > keep:
            self._save_live(live)  # (which may drop `state` from the store to make room)
            keep = restorable if self._restore(state) else 0
        elif keep < len(live) and kv_states.shared_prefix(live, wanted) < self._live_prompt:
            # Another conversation, or an earlier point of this one: save the live cache before
            # its tail is dropped. A prompt holding the whole last prompt goes on from it; the
            # answer it drops (regenerated, or written otherwise) is not kept.
            self._save_live(live)
        if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.n_tokens = keep
        else:
            llm.reset()
            keep = self._floor = 0
        self._dirty = False
        self._live_prompt = len(prompt)
        return len(prompt) - keep

    def _live_tokens(self) -> tuple[int, ...]:
        """The tokens in the KV cache; none where it may not hold them (an interrupted eval)."""
        llm = self._loaded
        if self._dirty or not llm.n_tokens:
            return ()
        return tuple(llm.input_ids[: llm.n_tokens].tolist())

    def _save_live(self, live: tuple[int, ...]) -> None:
        """Save the KV cache's state (holding `live`) before another prompt replaces it, unless
        saving is off, a saved state already serves what it would, or it holds images (their
        content is not in the tokens)."""
        if not live or not self._states.enabled() or min(live) < 0:
            return
        floor = len(live) if self._whole_states else 0
        if self._states.covers(live, floor):
            return
        state = kv_states.capture(import_llama_cpp(), self._loaded._ctx.ctx, live, floor, self._states.max_bytes)
        if state is not None:
            self._states.add(state)

    def _restore(self, state: kv_states.SavedState) -> bool:
        """Make `state` the live cache; False where llama.cpp refuses it."""
        llm = self._loaded
        if not kv_states.restore(import_llama_cpp(), llm._ctx.ctx, state):
            self._states.discard(state)
            return False
        llm.input_ids[: len(state.tokens)] = state.tokens
        llm.n_tokens = len(state.tokens)
        self._floor = state.floor
        self._states.touch(state)
        return True

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        """Stream the answer to `messages`. Raises TemplateError, BackendError, UsageError before the
        first chunk; closing the iterator stops the generation cleanly."""
        llama_cpp = import_llama_cpp()
        self.load()
        t0 = time.perf_counter()
        tools = self._tool_use(params)
        variables = template_variables(params)  # (with the tools' definitions where `tools` is not None)
        if any(images_of(m) for m in messages):
            rendered, prompt = self._with_images(messages, variables)
        else:
            rendered = self.render(messages, variables)
            prompt = self.tokenize_rendered(rendered)
        self.last_rendered, self.last_prompt_tokens = rendered, prompt
        # A generation prompt that ends on a label ("ASSISTANT:", "[/INST]") leaves the space
        # between label and answer to the model: that one space is the template's, not the
        # answer's. Nothing else is stripped (an answer may start with indented code).
        separator = bool(rendered.text) and not rendered.text[-1].isspace()
        return self._generate(llama_cpp, prompt, params, rendered, separator, t0, what="the conversation", tools=tools)

    def _with_images(self, messages: Sequence[Message],
                     variables: Mapping[str, Any] | None = None) -> tuple[RenderedPrompt, list[int]]:
        """Render and evaluate a conversation with images through the vision projector."""

        if self.mmproj is None:
            raise UsageError(f"{self.model_id} has no vision projector (mmproj) to see images with",
                             hint="give one with --mmproj FILE")
        if self._projector is None:
            projector = llama_vision.Projector(self.mmproj)
            projector.attach(self._loaded)
            self._projector = projector
        marked, images = llama_vision.with_markers(messages, self._projector.marker)
        rendered = self.render(marked, variables)
        self._save_live(self._live_tokens())  # the projector evaluates from an empty cache
        self._dirty = True  # until the evaluation below has finished
        prompt = self._projector.evaluate(self._loaded, llama_vision.prompt_text(rendered), images)
        self._dirty, self._floor = False, 0
        return rendered, prompt

    def complete(self, text: str, params: GenerationParams) -> Iterator[Chunk]:
        """Stream the continuation of `text` as it stands: no template, only the BOS token the
        model asks for. For base models, which answer a chat template poorly."""
        llama_cpp = import_llama_cpp()
        llm = self.load()
        t0 = time.perf_counter()
        prompt = _text_tokens(llm, text)
        self.last_rendered, self.last_prompt_tokens = None, prompt
        return self._generate(llama_cpp, prompt, params, None, False, t0, what="the text")

    def _generate(self, llama_cpp: ModuleType, prompt: list[int], params: GenerationParams, rendered: RenderedPrompt | None,
                  separator: bool, t0: float, *, what: str, tools: _ToolUse | None = None) -> Iterator[Chunk]:
        """Check that `prompt` leaves room to answer, set up sampling and stops, and stream."""
        llm = self._loaded
        room = self.context_window - len(prompt)
        if room < 1:
            raise ContextFull(
                f"{what} is {len(prompt)} tokens, more than the context window of {self.context_window}",
                hint="start a new conversation, drop turns, or raise --ctx",
            )
        stops = tuple(dict.fromkeys((*(getattr(rendered, "stop", None) or ()), *params.stop)))
        sampling = self._sampling(params, tools)
        if params.seed is not None:
            llm.set_seed(params.seed)
        else:
            llm.set_seed(llama_cpp.LLAMA_DEFAULT_SEED)
        limit = room if params.max_tokens is None else min(params.max_tokens, room)
        stop_ids = self._stop_token_ids(llama_cpp, rendered, stops)
        return self._stream(llama_cpp, prompt, sampling, limit, stops, stop_ids, separator, t0, tools)

    def _stream(self, llama_cpp: ModuleType, prompt: list[int], sampling: dict[str, Any], limit: int,
                stops: tuple[str, ...], stop_ids: frozenset[int], separator: bool, t0: float,
                tools: _ToolUse | None) -> Iterator[Chunk]:
        llm = self._loaded
        to_eval = self._prepare(prompt)
        matcher = StopMatcher(stops)
        parser = parser_for(tools.format.name) if tools is not None else None
        markers = {token: marker.encode("utf-8") for marker, token in tools.tokens.items()} if tools else {}
        calls: list[ToolCall] = []
        self.last_tool_problems = ()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = llm._model.vocab
        is_eog = llama_cpp.llama_vocab_is_eog
        generated: list[int] = []
        finish = FINISH_LENGTH
        t_first = t_last = None
        clean = False
        try:
            if limit > 0:
                for token in llm.generate(prompt[len(prompt) - to_eval :], reset=False, **sampling):
                    t_last = time.perf_counter()
                    if t_first is None:
                        t_first = t_last
                    if token in stop_ids or is_eog(vocab, token):
                        finish = FINISH_STOP
                        break
                    generated.append(token)
                    text = decoder.decode(markers.get(token) or self._piece(llama_cpp, token))
                    if separator and text:
                        text = text[1:] if text[0] == " " else text
                        separator = False
                    out = matcher.feed(text) if text else ""
                    if out and parser is not None:
                        out = parser.feed(out)
                    if out:
                        yield Chunk(text=out)
                    if matcher.stopped:
                        finish = FINISH_STOP
                        break
                    if len(generated) >= limit:
                        break
            tail = matcher.feed(decoder.decode(b"", final=True)) + matcher.flush()
            if parser is not None:  # the held call spans: calls, or text
                tail = parser.feed(tail)
                rest, calls = parser.finish(cut=finish == FINISH_LENGTH)
                tail += rest
                self.last_tool_problems = tuple(parser.problems)
            if tail:
                yield Chunk(text=tail)
            clean = True
        except GeneratorExit:
            clean = True  # closed at a yield: the evaluated state is consistent
            raise
        finally:
            if not clean:
                self._dirty = True
            elif calls:
                self._remember_call(llama_cpp, generated)
            elif matcher.matched is None:
                self._remember(llama_cpp, generated)
        n = len(generated)
        load_s, self._load_s_unreported = self._load_s_unreported, 0.0
        rate = None
        if n >= 2 and t_first is not None and t_last is not None and t_last > t_first:
            rate = (n - 1) / (t_last - t_first)
        yield Chunk(
            finish_reason=FINISH_TOOL_CALLS if calls else finish,
            tool_calls=tuple(calls),
            # the reused prefix is this backend's prompt cache: reported as cached (it costs nothing)
            usage=Usage(prompt_tokens=len(prompt), completion_tokens=n).with_cache(len(prompt) - to_eval),
            timings=Timings(
                load_s=load_s,
                first_token_s=None if t_first is None else t_first - t0,
                tokens_per_second=rate,
                prompt_eval_tokens=to_eval,
            ),
        )

    # --- embeddings ------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalized vector per text. Models that declare no pooling are mean-pooled."""
        llama_cpp = import_llama_cpp()
        if self._embedder is None:
            pooling = {}
            if f"{self.gguf.architecture}.pooling_type" not in self.gguf.metadata:
                pooling["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
            t0 = time.perf_counter()
            self._embedder = self._construct(embedding=True, **pooling)
            self.load_s = time.perf_counter() - t0
        try:
            return [list(map(float, v)) for v in self._embedder.embed(list(texts), normalize=True)]
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not embed the input: {exc}") from None


def _keep(store: OrderedDict[str, tuple[int, ...]], variants: Mapping[str, tuple[int, ...]]) -> None:
    """Put `variants` last in `store`, which keeps the _REMEMBERED_ANSWERS last ones."""
    for text, tokens in variants.items():
        store[text] = tokens
        store.move_to_end(text)
    while len(store) > _REMEMBERED_ANSWERS:
        store.popitem(last=False)


def _apart(spans: list[tuple[int, int, tuple[int, ...]]]) -> list[tuple[int, int, tuple[int, ...]]]:
    """`spans` in order, without overlaps: of two that overlap, the one that starts first (at one
    start, the longer) is kept."""
    kept: list[tuple[int, int, tuple[int, ...]]] = []
    for span in sorted(spans, key=lambda s: (s[0], s[0] - s[1])):
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def _states_whole_only(llama_cpp: ModuleType, llm: "Llama") -> bool:
    """Whether a saved state of this model restores exactly only in whole: llama.cpp leaves the
    cells a sliding window no longer sees out of it, and a recurrent state cannot be cut back.
    Where this llama-cpp-python cannot tell, it is taken to."""
    model = llm._model.model
    try:
        return bool(llama_cpp.llama_model_n_swa(model) > 0 or llama_cpp.llama_model_is_recurrent(model)
                    or llama_cpp.llama_model_is_hybrid(model))
    except AttributeError:
        return True


def _text_tokens(llm: "Llama", text: str) -> list[int]:
    """`text` as it stands, with only the BOS token the model asks for. Special-token text in
    it stays text: what the user wrote is not a control token."""
    return llm.tokenize(text.encode("utf-8"), add_bos=llm.token_bos() >= 0 and llm._model.add_bos_token(),
                        special=False)

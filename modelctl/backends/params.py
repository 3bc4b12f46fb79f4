"""Generation parameters in a provider's request, from one table per provider.

A table names, for every generation parameter (`PARAM_NAMES`), the field of the provider's
request that carries it, or None where the provider has no such parameter:

    MISTRAL = param_table(max_tokens="max_tokens", temperature="temperature", top_p="top_p",
                          top_k=None, seed="random_seed", stop="stop", repeat_penalty=None)

`request_fields(params, table)` gives the fields for the parameters that are set, in the table's
order, and the names of those set that the provider has no field for (`--debug` says they were
left out). A parameter added to `GenerationParams` makes every table that does not name it an
error at import, so that no provider drops it unnoticed.
"""

from __future__ import annotations

from typing import Any, Mapping

from modelctl.backends.base import PARAM_NAMES, GenerationParams

ParamTable = Mapping[str, "str | None"]


def param_table(**fields: str | None) -> dict[str, str | None]:
    """A provider's table: every generation parameter, with its request field or None. The
    order given is the order of the fields in a request."""
    missing = [name for name in PARAM_NAMES if name not in fields]
    unknown = [name for name in fields if name not in PARAM_NAMES]
    if missing or unknown:
        raise TypeError(f"a parameter table names every generation parameter once: "
                        f"missing {missing}, unknown {unknown}")
    return dict(fields)


def request_fields(params: GenerationParams, table: ParamTable) -> tuple[dict[str, Any], list[str]]:
    """(request fields for the parameters that are set, names of those set that the provider
    lacks). A sequence (`stop`) goes as a list; an empty one counts as not set."""
    found: dict[str, Any] = {}
    lacking: list[str] = []
    for name, field in table.items():
        value = getattr(params, name)
        if value is None or value == ():
            continue
        if field is None:
            lacking.append(name)
        else:
            found[field] = list(value) if isinstance(value, tuple) else value
    return found, lacking

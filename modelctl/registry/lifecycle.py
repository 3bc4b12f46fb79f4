"""Using a model its provider is shutting down: a deprecated model is used with a warning (once
per registry, that is once per run), a retired one is refused unless the caller allows it.

Both name where the model's replacements lead: the end of its chain (`Registry.replacement_chain`),
which a loaded registry guarantees is still served. Only a model used through a service (an API,
a server) is checked: weights on this machine do not retire, and a model the registry does not
know has no lifecycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from modelctl.errors import UsageError
from modelctl.registry.vocab import today_iso

if TYPE_CHECKING:
    from modelctl.registry.model import Model
    from modelctl.registry.registry import Registry

ALLOW_FLAG = "--allow-retired"


def _instead(model: "Model", registry: "Registry") -> str:
    """'; use X instead', X being where the model's replacements lead ('' without one)."""
    chain = registry.replacement_chain(model)
    return f"; use {chain[-1].id} instead" if len(chain) > 1 else ""


def lifecycle_warning(model: "Model", registry: "Registry", *, allow_retired: bool = False,
                      today: str | None = None) -> str | None:
    """What to tell a user of `model`: None for a model still served and not deprecated, a
    warning for a deprecated one (or a retired one `allow_retired` lets through). A retired
    model otherwise raises UsageError naming its replacement."""
    today = today or today_iso()
    if model.retired(today):
        if not allow_retired:
            raise UsageError(f"{model.id} was retired on {model.retires}{_instead(model, registry)}",
                             hint=f"{ALLOW_FLAG} uses it anyway")
        return f"{model.id} was retired on {model.retires} (used because of {ALLOW_FLAG}){_instead(model, registry)}"
    if model.status != "deprecated":
        return None
    when = f"retires {model.retires}" if model.retires else f"since {model.deprecated}" if model.deprecated else ""
    return f"{model.id} is deprecated{f' ({when})' if when else ''}{_instead(model, registry)}"


def check_use(model: "Model", registry: "Registry", notify: Callable[[str], None], *,
              allow_retired: bool = False, today: str | None = None) -> None:
    """Refuse a retired `model` (unless `allow_retired`); warn of a deprecated one through
    `notify`, once per registry (the CLI loads one per run)."""
    message = lifecycle_warning(model, registry, allow_retired=allow_retired, today=today)
    if message is not None and model.id not in registry.lifecycle_warned:
        registry.lifecycle_warned.add(model.id)
        notify(message)

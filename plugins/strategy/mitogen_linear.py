"""The stack playbooks' and the Molecule role scenarios' strategy: Mitogen's linear strategy
from the pinned `mitogen` package (its plugin lives inside the package, whose path depends on
the venv).

ansible-core 2.19 deprecates every strategy plugin outside ansible.builtin, with no
replacement planned, and says so on every run. We keep Mitogen for its numbers (no-op
site.yml 40.7 s -> 23.5 s; the Molecule scenarios 721 s -> 552 s; docs/benchmarks.md) and
silence that one message here, where it is understood; every other deprecation still shows."""

from __future__ import annotations

from typing import Any

from ansible.utils.display import Display
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401

_UNDERSTOOD = "Use of strategy plugins not included in ansible.builtin are deprecated"
_deprecated = Display.deprecated


def _deprecated_but_the_strategy_notice(self: Display, msg: str, *args: Any, **kwargs: Any) -> Any:
    if msg.startswith(_UNDERSTOOD):
        return None
    return _deprecated(self, msg, *args, **kwargs)


# The loader imports this module just before it warns about the plugin it loaded.
if Display.deprecated is not _deprecated_but_the_strategy_notice:
    Display.deprecated = _deprecated_but_the_strategy_notice

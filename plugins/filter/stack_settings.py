"""stack_unknown_settings: name the stack_* variables the stack does not know (a misspelt
setting such as stack_asg_max_szie would otherwise be ignored without a word)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def stack_unknown_settings(names: Iterable[str], known: Iterable[str]) -> list[str]:
    """Each unknown name, with the closest known setting when one is near ("x (did you mean y?)")."""
    known_names = sorted(set(known))
    problems = []
    for name in sorted(set(names) - set(known_names)):
        close = difflib.get_close_matches(name, known_names, n=1, cutoff=0.8)
        problems.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"stack_unknown_settings": stack_unknown_settings}

"""stack_owned: keep the resources tagged as this project's environment (teardown's guard)."""

from __future__ import annotations

from typing import Any


def _tag_dict(tags: Any) -> dict[str, str]:
    """Tags as a dict, whether given as a dict or as AWS's list of Key/Value (any case) pairs."""
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    pairs = {}
    for tag in tags or []:
        key = tag.get("Key", tag.get("key"))
        pairs[str(key)] = str(tag.get("Value", tag.get("value")))
    return pairs


def stack_owned(resources: list[dict[str, Any]], project: str, env: str,
                tags_key: str = "tags") -> list[dict[str, Any]]:
    """The resources whose tags say Project=project (the naming map's stack__project) and Environment=env."""
    return [r for r in resources
            if _tag_dict(r.get(tags_key)).get("Project") == project
            and _tag_dict(r.get(tags_key)).get("Environment") == env]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"stack_owned": stack_owned}

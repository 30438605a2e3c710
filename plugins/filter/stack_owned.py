"""stack_owned: keep the resources carrying every tag of the stack (stack_tags: project, app and
environment), teardown's guard; stack_asg_tags: those tags as an Auto Scaling group takes them."""

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


def stack_owned(resources: list[dict[str, Any]], tags: dict[str, str],
                tags_key: str = "tags") -> list[dict[str, Any]]:
    """The resources carrying every one of tags (the stack's stack_tags)."""
    wanted = {str(k): str(v) for k, v in tags.items()}.items()
    return [r for r in resources if _tag_dict(r.get(tags_key)).items() >= wanted]


def stack_asg_tags(tags: dict[str, str]) -> list[dict[str, Any]]:
    """amazon.aws.autoscaling_group's tags, each given to the instances too, sorted by key as AWS
    lists them (the module compares them in order: unsorted, every run would change them)."""
    return [{key: tags[key], "propagate_at_launch": True} for key in sorted(tags)]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"stack_owned": stack_owned, "stack_asg_tags": stack_asg_tags}

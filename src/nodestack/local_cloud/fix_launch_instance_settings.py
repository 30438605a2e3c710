"""ec2 instances launched from a launch template or an Auto Scaling launch configuration:
moto 5.2 drops the template's IamInstanceProfile and MetadataOptions (and the
configuration's IamInstanceProfile and MetadataOptions), so an Auto Scaling instance has
no instance profile and IMDSv2 is never required.

AWS: RunInstances with a launch template takes every setting the template version holds
unless the call gives its own (explicit parameters win); an Auto Scaling group launches
with its template's or configuration's instance profile and metadata options.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.models.instances import InstanceBackend, MetadataOptions, Reservation


def _from_template(backend: InstanceBackend, kwargs: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    data = backend._get_template_from_args(kwargs["launch_template"]).data
    return dict(data.get("IamInstanceProfile") or {}), dict(data.get("MetadataOptions") or {})


def _from_configuration(config: Any) -> tuple[dict[str, str], dict[str, Any]]:
    profile = str(config.iam_instance_profile or "")
    named = {"Arn": profile} if profile.startswith("arn:") else ({"Name": profile} if profile else {})
    return named, dict(config.metadata_options or {})


def apply() -> None:
    original = InstanceBackend.run_instances

    def run_instances(self: InstanceBackend, image_id: str, count: int, user_data: Any,
                      security_group_names: list[str], **kwargs: Any) -> Reservation:
        reservation = original(self, image_id, count, user_data, security_group_names, **kwargs)
        if kwargs.get("launch_template"):
            profile, metadata = _from_template(self, kwargs)
        elif kwargs.get("launch_config") is not None:
            profile, metadata = _from_configuration(kwargs["launch_config"])
        else:
            return reservation
        explicit_profile = kwargs.get("iam_instance_profile_name") or kwargs.get("iam_instance_profile_arn")
        for instance in reservation.instances:
            if profile and not explicit_profile:  # RunInstances' own parameter is associated by its caller
                # the association also sets the instance's IamInstanceProfile
                self.associate_iam_instance_profile(  # type: ignore[attr-defined]
                    instance.id, iam_instance_profile_name=profile.get("Name"),
                    iam_instance_profile_arn=profile.get("Arn"))
            if metadata and not kwargs.get("metadata_options"):
                instance.metadata_options = MetadataOptions(metadata)
        return reservation

    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]

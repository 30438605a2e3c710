"""ec2 DeleteLaunchTemplateVersions: not implemented in moto 5.2 (deleting a launch template
with several versions then fails in amazon.aws.ec2_launch_template).

AWS: deletes the given versions of one template; the default version cannot be deleted
(use DeleteLaunchTemplate); each version is reported as deleted or not, with a reason.
Version numbers are never reused, so lookups go by number, not by list position.

Also: moto keeps the UserData of CreateLaunchTemplateVersion as a plain string where the
rest of moto expects its base64 type, so an Auto Scaling group launching from such a
version fails (HTTP 500). New versions' user data is stored as CreateLaunchTemplate does.

And: moto's CreateLaunchTemplate copies the request's tags for the template itself
(ResourceType launch-template) into version 1's LaunchTemplateData.TagSpecifications,
where AWS keeps only what instances and volumes get; so version 1 never equals the same
data sent again, and amazon.aws.ec2_launch_template makes a needless version 2.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.core.types import Base64EncodedString
from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound
from moto.ec2.models.launch_templates import LaunchTemplate, LaunchTemplateBackend, LaunchTemplateVersion
from moto.ec2.responses.launch_templates import LaunchTemplates


def _get_version(self: LaunchTemplate, num: Any) -> LaunchTemplateVersion:
    if str(num).lower() == "$latest":
        return self.versions[-1]
    if str(num).lower() == "$default":
        return _get_version(self, self.default_version_number)
    for version in self.versions:
        if str(version.number) == str(num):
            return version
    raise InvalidLaunchTemplateVersionNotFound(template_id=self.id, version=num)


def _create_version(self: LaunchTemplate, data: dict[str, Any], description: str) -> LaunchTemplateVersion:
    if isinstance(data.get("UserData"), str):
        data = {**data, "UserData": Base64EncodedString(data["UserData"])}
    highest = max([v.number for v in self.versions] + [getattr(self, "highest_version_number", 0)])
    version = LaunchTemplateVersion(self, highest + 1, data, description)
    self.highest_version_number = highest + 1  # type: ignore[attr-defined]
    self.versions.append(version)
    return version


def _without_template_tags(original: Any) -> Any:
    def create(self: Any, name: str, description: str, template_data: dict[str, Any],
               tag_spec: dict[str, Any]) -> LaunchTemplate:
        specs = [t for t in template_data.get("TagSpecifications", []) if t.get("ResourceType") != "launch-template"]
        data = ({**template_data, "TagSpecifications": specs} if specs
                else {k: v for k, v in template_data.items() if k != "TagSpecifications"})
        return original(self, name, description, data, tag_spec)
    return create


def _delete_versions(self: LaunchTemplates) -> ActionResult:
    self.error_on_dryrun()
    name, tid = self._get_param("LaunchTemplateName"), self._get_param("LaunchTemplateId")
    template = self.ec2_backend.get_launch_template_by_name(name) if name else self.ec2_backend.get_launch_template(tid)
    deleted, failed = [], []
    for requested in self._get_param("Versions", []):
        ref = {"LaunchTemplateId": template.id, "LaunchTemplateName": template.name, "VersionNumber": int(requested)}
        match = [v for v in template.versions if str(v.number) == str(requested)]
        if not match:
            failed.append({**ref, "ResponseError": {"Code": "launchTemplateVersionDoesNotExist",
                                                    "Message": f"The launch template version {requested} "
                                                               "does not exist."}})
        elif template.is_default(match[0]):
            failed.append({**ref, "ResponseError": {"Code": "unexpectedError",
                                                    "Message": "Cannot delete the default version; "
                                                               "delete the launch template instead."}})
        else:
            template.versions.remove(match[0])
            deleted.append(ref)
    return ActionResult({"SuccessfullyDeletedLaunchTemplateVersions": deleted,
                         "UnsuccessfullyDeletedLaunchTemplateVersions": failed})


def apply() -> None:
    LaunchTemplate.get_version = _get_version  # type: ignore[method-assign]
    LaunchTemplate.default_version = lambda self: _get_version(self, self.default_version_number)  # type: ignore[method-assign]
    LaunchTemplate.create_version = _create_version  # type: ignore[method-assign]
    LaunchTemplates.delete_launch_template_versions = _delete_versions  # type: ignore[attr-defined]
    LaunchTemplateBackend.create_launch_template = _without_template_tags(  # type: ignore[method-assign]
        LaunchTemplateBackend.create_launch_template)

"""ec2 AMIs shared with another account: moto 5.2 keeps images per account, so an image of
account A that carries a launch permission for account B is invisible to B (DescribeImages
finds nothing) and B's RunInstances never asks whose it is (moto launches any id, even an
image of A that A never shared).

AWS: DescribeImages shows the caller its own images, public ones and those another account
shared with it (a launch permission naming the caller), in the same region; `ImageIds`, `Owners`,
`ExecutableUsers` and filters narrow that as documented (`self` = the caller), together: an id of a
shared image that `Owners` or a filter excludes gives no image, an id the caller may not see is
InvalidAMIID.NotFound. The owner's tags are not shared ("your user-defined tags are not available
to any AWS account that the AMI is shared with"); an account may tag a shared image, and those tags
are its own ("You can associate tags with public or shared resources, but the tags are available
only for your AWS account"): CreateTags finds such an image. RunInstances with another account's
image that is neither public nor shared with the caller is InvalidAMIID.NotFound; moto's
acceptance of ids it has never seen (no MOTO_ENABLE_AMI_VALIDATION) is left as it is. Only the
RunInstances call is checked: an Auto Scaling group's launches (moto's own path) are not, where
AWS would accept the group and record a failed scaling activity (docs/local-cloud.md).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.models import EC2Backend, ec2_backends
from moto.ec2.models.amis import Ami
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.utils import generic_filter


def _others_images(account: str, region: str) -> list[Ami]:
    """Images other accounts own in region (not moto's copies of Amazon's public images, which
    every account's backend holds already)."""
    found: list[Ami] = []
    for owner, regions in list(dict.items(ec2_backends)):
        if owner == account or region not in dict.keys(regions):
            continue
        backend = dict.__getitem__(regions, region)
        found += [image for image in list(backend.amis.values()) if image.owner_id == owner]
    return found


def _launchable_by(image: Ami, account: str) -> bool:
    return image.is_public or {"UserId": account} in image.launch_permissions


def _visible(backend: Any, ami_ids: list[str] | None = None) -> list[Ami]:
    """Other accounts' images shared with this backend's account (of ami_ids, if given)."""
    account = backend.account_id
    return [i for i in _others_images(account, backend.region_name)
            if _launchable_by(i, account) and (ami_ids is None or i.id in ami_ids)]


def _seen_by(image: Ami, consumer: Any) -> Ami:
    """The image as the consumer sees it: its own tags on it (none until it tags it), not the owner's."""
    view = copy.copy(image)
    view.ec2_backend = consumer
    return view


def narrowed(backend: Any, images: list[Ami], filters: dict[str, Any], owners: list[str],
             exec_users: list[str]) -> list[Ami]:
    """Shared images as DescribeImages narrows them, seen by backend's account."""
    account = backend.account_id
    if exec_users:
        users = {account if u == "self" else u for u in exec_users}
        images = [i for i in images if i.is_public or any({"UserId": u} in i.launch_permissions for u in users)]
    if owners:
        wanted = {account if o == "self" else o for o in owners}
        images = [i for i in images if i.owner_id in wanted or i.owner_alias in wanted]
    views = [_seen_by(i, backend) for i in images]
    return list(generic_filter(filters, views)) if filters else views


def apply() -> None:
    describe, run, exist = AmisResponse.describe_images, InstanceResponse.run_instances, EC2Backend.do_resources_exist

    def describe_images(self: AmisResponse) -> ActionResult:
        ami_ids = self._get_param("ImageIds", [])
        visible = _visible(self.ec2_backend, ami_ids or None)
        shared = narrowed(self.ec2_backend, visible, self._filters_from_querystring(),
                          self._get_param("Owners", []), self._get_param("ExecutableUsers", []))
        try:
            result = describe(self)
        except InvalidAMIIdError:
            if not visible:
                raise
            self.error_on_dryrun()
            return ActionResult({"Images": shared})
        mine = result.result["Images"]  # type: ignore[index]  # moto types it as object
        return ActionResult({"Images": mine + shared})

    def run_instances(self: InstanceResponse) -> ActionResult:
        template = self._get_param("LaunchTemplate", {})
        wanted = self._get_param("ImageId") or (
            self.ec2_backend._get_template_from_args(template).data.get("ImageId") if template else None)
        account, region = self.ec2_backend.account_id, self.ec2_backend.region_name
        if wanted and wanted not in self.ec2_backend.amis:
            foreign = [i for i in _others_images(account, region) if i.id == wanted]
            if foreign and not _launchable_by(foreign[0], account):
                raise InvalidAMIIdError(wanted)
        return run(self)

    def do_resources_exist(self: EC2Backend, resource_ids: list[str]) -> bool:
        shared = {i.id for i in _visible(self, [r for r in resource_ids if r.startswith("ami-")])}
        return bool(exist(self, [r for r in resource_ids if r not in shared]))

    AmisResponse.describe_images = describe_images  # type: ignore[method-assign]
    InstanceResponse.run_instances = run_instances  # type: ignore[method-assign]
    EC2Backend.do_resources_exist = do_resources_exist  # type: ignore[method-assign]

"""ec2 AMIs shared with another account: moto 5.2 keeps images per account, so an image of
account A that carries a launch permission for account B is invisible to B (DescribeImages
finds nothing) and B's RunInstances never asks whose it is (moto launches any id, even an
image of A that A never shared).

AWS: DescribeImages shows the caller its own images, public ones and those another account
shared with it (a launch permission naming the caller), in the same region; `Owners` and
`ExecutableUsers` narrow that as documented (`self` = the caller). The owner's tags are not
shared: tags are the tagging account's own ("available only to your AWS account"). RunInstances
with another account's image that is neither public nor shared with the caller is
InvalidAMIID.NotFound; moto's acceptance of ids it has never seen (no MOTO_ENABLE_AMI_VALIDATION)
is left as it is.
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidAMIIdError
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.responses.amis import AmisResponse
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


def _seen_by(image: Ami, consumer: Any) -> Ami:
    """The image as the consumer sees it: its own tags on it (none until it tags it), not the owner's."""
    view = copy.copy(image)
    view.ec2_backend = consumer
    return view


def shared_with(backend: Any, ami_ids: list[str], filters: dict[str, Any], owners: list[str],
                exec_users: list[str]) -> list[Ami]:
    """Other accounts' images this backend's account may see, narrowed as DescribeImages narrows."""
    account = backend.account_id
    images = [i for i in _others_images(account, backend.region_name) if _launchable_by(i, account)]
    if ami_ids:
        return [_seen_by(i, backend) for i in images if i.id in ami_ids]
    if exec_users:
        users = {account if u == "self" else u for u in exec_users}
        images = [i for i in images if i.is_public or any({"UserId": u} in i.launch_permissions for u in users)]
    if owners:
        wanted = {account if o == "self" else o for o in owners}
        images = [i for i in images if i.owner_id in wanted or i.owner_alias in wanted]
    views = [_seen_by(i, backend) for i in images]
    return list(generic_filter(filters, views)) if filters else views


def apply() -> None:
    describe, run = AmisResponse.describe_images, InstanceBackend.run_instances

    def describe_images(self: AmisResponse) -> ActionResult:
        ami_ids = self._get_param("ImageIds", [])
        shared = shared_with(self.ec2_backend, ami_ids, self._filters_from_querystring(),
                             self._get_param("Owners", []), self._get_param("ExecutableUsers", []))
        try:
            result = describe(self)
        except InvalidAMIIdError:
            if not shared:
                raise
            self.error_on_dryrun()
            return ActionResult({"Images": shared})
        mine = result.result["Images"]  # type: ignore[index]  # moto types it as object
        return ActionResult({"Images": mine + shared})

    def run_instances(self: InstanceBackend, image_id: str, count: int, user_data: Any,
                      security_group_names: list[str], **kwargs: Any) -> Any:
        wanted = image_id or (self._get_template_from_args(kwargs["launch_template"]).data.get("ImageId")
                              if kwargs.get("launch_template") else None)
        account, region = self.account_id, self.region_name  # type: ignore[attr-defined]
        if wanted and wanted not in self.amis:  # type: ignore[attr-defined]
            foreign = [i for i in _others_images(account, region) if i.id == wanted]
            if foreign and not _launchable_by(foreign[0], account):
                raise InvalidAMIIdError(wanted)
        return run(self, image_id, count, user_data, security_group_names, **kwargs)

    AmisResponse.describe_images = describe_images  # type: ignore[method-assign]
    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]

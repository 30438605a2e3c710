"""ec2 ImdsSupport on AMIs: moto 5.2 ignores it on RegisterImage and ModifyImageAttribute
(answering success), never returns it from DescribeImages, and DescribeImageAttribute
imdsSupport fails with HTTP 500.

AWS: RegisterImage and ModifyImageAttribute take ImdsSupport, whose only value is
"v2.0"; once set it cannot be unset (ModifyImageAttribute with another value is an
InvalidParameterValue). DescribeImages returns ImdsSupport when set, and
DescribeImageAttribute imdsSupport returns {"Value": "v2.0"} or an empty value.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import InvalidParameterValueError
from moto.ec2.models.amis import Ami
from moto.ec2.responses.amis import AmisResponse

_V2 = "v2.0"


def _checked(value: str | None) -> str | None:
    if value is not None and value != _V2:
        raise InvalidParameterValueError(value)  # the only valid value is v2.0
    return value


def apply() -> None:
    modify, register = AmisResponse.modify_image_attribute, AmisResponse.register_image
    describe_attribute = AmisResponse.describe_image_attribute
    Ami.imds_support = None  # type: ignore[attr-defined]  # shape member ImdsSupport of DescribeImages

    def modify_image_attribute(self: AmisResponse) -> Any:
        value = _checked(self._get_param("ImdsSupport.Value"))
        if value is not None:
            self.error_on_dryrun()
            self.ec2_backend.describe_images(ami_ids=[self._get_param("ImageId")])[0].imds_support = value
            if not self._get_param("LaunchPermission") and not self._get_param("OperationType"):
                return EmptyResult()
        return modify(self)

    def register_image(self: AmisResponse) -> Any:
        value = _checked(self._get_param("ImdsSupport"))
        result: ActionResult = register(self)
        if value is not None:
            image_id = result.result["ImageId"]  # type: ignore[index]  # moto types it as object
            self.ec2_backend.describe_images(ami_ids=[image_id])[0].imds_support = value
        return result

    def describe_image_attribute(self: AmisResponse) -> Any:
        if self._get_param("Attribute") != "imdsSupport":
            return describe_attribute(self)
        ami_id = self._get_param("ImageId")
        image = self.ec2_backend.describe_images(ami_ids=[ami_id])[0]
        value = getattr(image, "imds_support", None)
        return ActionResult({"ImageId": ami_id, "ImdsSupport": {"Value": value} if value else {}})

    AmisResponse.modify_image_attribute = modify_image_attribute  # type: ignore[method-assign]
    AmisResponse.register_image = register_image  # type: ignore[method-assign]
    AmisResponse.describe_image_attribute = describe_image_attribute  # type: ignore[method-assign]

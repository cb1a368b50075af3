"""moto's ECR backend and responses, patched where moto is not ECR.

Each patched call holds the state's lock, so PutImage, BatchGetImage and
BatchDeleteImage are atomic with respect to each other, as ECR's are.
"""

import hashlib
import json
import re
import time

from moto.ecr.exceptions import (
    ImageAlreadyExistsException,
    ImageNotFoundException,
    InvalidParameterException,
    RepositoryNotFoundException,
)
from moto.ecr.models import ECRBackend, Image
from moto.ecr.responses import ECRResponse

from . import kms
from .common import page, wildcard
from .errors import ImageDigestDoesNotMatchException, ImageTagAlreadyExistsException, LimitExceededException
from .signing import (
    artifact_fields,
    describe_image_signing_status_response,
    image_status as status,
    list_image_referrers_response,
    scan_fields,
)
from .blobs import (
    check_put,
    get_account_setting_response,
    get_authorization_token_response,
    get_download_url_for_layer_response,
    put_account_setting_response,
    strict_complete_layer_upload,
    strict_upload_layer_part,
)
from .settings import (
    accept_current_lifecycle_policies,
    without_rules_allowed,
    batch_get_repository_scanning_configuration_response,
    create_pull_through_cache_rule_response,
    describe_pull_through_cache_rules_response,
)
from .state import STATE


def sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def strict_put_image(self, repository_name, image_manifest, image_tag,
                     image_manifest_mediatype=None, digest=None):
    with STATE.lock:
        repo = self.repositories.get(repository_name)
        if repo is None:
            raise RepositoryNotFoundException(repository_name, self.account_id)
        try:
            parsed = json.loads(image_manifest)
        except ValueError:
            raise InvalidParameterException("Invalid parameter at 'ImageManifest': invalid JSON syntax")
        media_type = image_manifest_mediatype or parsed.get("mediaType")
        if not media_type:
            raise InvalidParameterException(
                "image manifest media type not provided in manifest or parameter")
        actual = sha256(image_manifest)
        if digest and digest != actual:
            raise ImageDigestDoesNotMatchException(digest, actual)
        holder = next((i for i in repo.images if image_tag and image_tag in i.image_tags), None)
        if holder is not None and tag_is_immutable(repo, image_tag):
            raise ImageTagAlreadyExistsException(repository_name, repo.registry_id, image_tag)
        existing = next((i for i in repo.images if i.get_image_digest() == actual), None)
        if existing is not None and holder is existing:
            if image_tag:
                STATE.redundant[repository_name][image_tag] += 1
            raise ImageAlreadyExistsException(
                repository_name=repository_name, registry_id=repo.registry_id,
                digest=actual, image_tag=image_tag)
        # ECR's checks that the manifest's blobs and children are in the repository (blobs.py).
        check_put(repo, image_manifest, STATE.caller_is_function(), existing is not None)
        limit = STATE.tags_per_image(repository_name)
        if (existing is not None and image_tag and image_tag not in existing.image_tags
                and len(existing.image_tags) >= limit):
            raise LimitExceededException(limit)
        if image_tag:
            STATE.writes[repository_name][image_tag] += 1
        if holder is not None:
            holder.image_tags.remove(image_tag)
            holder.image_tag = holder.image_tags[-1] if holder.image_tags else None
        if existing is not None:
            if status(existing) != "ACTIVE":
                # ECR restores an archived image that is pushed again (90-day minimum charge).
                existing.strict_status = "ACTIVATING"
                STATE.restores[repository_name][actual] += 1
            if image_tag:
                existing.update_tag(image_tag)
            return existing
        image = Image(self.account_id, image_tag, image_manifest, repository_name,
                      media_type, actual, registry_id=repo.registry_id)
        image.image_pushed_at = round(time.time(), 3)
        repo.images.append(image)
        return image


def strict_batch_get_image(self, repository_name, registry_id=None, image_ids=None,
                           accepted_media_types=None):
    with STATE.lock:
        repo = self.repositories.get(repository_name)
        if repo is None:
            raise RepositoryNotFoundException(repository_name, registry_id or self.account_id)
        images, failures = [], []

        def fail(image_id, code, reason):
            failures.append({"imageId": dict(image_id), "failureCode": code, "failureReason": reason})

        for image_id in image_ids or []:
            digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
            if not digest and not tag:
                fail(image_id, "MissingDigestAndTag", "Neither digest nor tag was given")
                continue
            if digest and not (digest.startswith("sha256:") and len(digest) == 71):
                fail(image_id, "InvalidImageDigest", "Invalid image digest")
                continue
            by_digest = next((i for i in repo.images if digest and i.get_image_digest() == digest), None)
            by_tag = next((i for i in repo.images if tag and tag in i.image_tags), None)
            if digest and tag and by_digest is not None and by_tag is not by_digest:
                fail(image_id, "ImageTagDoesNotMatchDigest", "Tag does not match digest")
                continue
            image = by_digest if digest else by_tag
            if image is None:
                fail(image_id, "ImageNotFound", "Requested image not found")
                continue
            if status(image) != "ACTIVE":
                fail(image_id, "ImageInaccessible", "The image is archived and cannot be pulled")
                continue
            manifest = image.image_manifest
            media_type = image.image_manifest_media_type
            if not accepted_media_types or media_type not in accepted_media_types:
                # Stands in for ECR's conversion: not the stored bytes.
                manifest = json.dumps(json.loads(manifest), indent=7)
            answered_id = {"imageDigest": image.get_image_digest()}
            if tag:
                answered_id["imageTag"] = tag
            images.append({
                "registryId": repo.registry_id,
                "repositoryName": repository_name,
                "imageId": answered_id,
                "imageManifest": manifest,
                "imageManifestMediaType": media_type,
            })
        return {"images": images, "failures": failures}


def batch_get_image_response(self):
    from moto.core.responses import ActionResult
    return ActionResult(self.ecr_backend.batch_get_image(
        self._get_param("repositoryName"),
        self._get_param("registryId"),
        self._get_param("imageIds"),
        self._get_param("acceptedMediaTypes"),
    ))


moto_batch_delete_image = ECRBackend.batch_delete_image


def strict_batch_delete_image(self, repository_name, registry_id=None, image_ids=None):
    with STATE.lock:
        response = moto_batch_delete_image(self, repository_name, registry_id, image_ids)
        for image_id in image_ids or []:
            if "imageTag" in image_id and not any(f["imageId"].get("imageTag") == image_id["imageTag"]
                                                  for f in response["failures"]):
                STATE.deletes[repository_name][image_id["imageTag"]] += 1
        return response


def describe_images_response(self):
    from moto.core.responses import ActionResult
    with STATE.lock:
        images = list(self.ecr_backend.describe_images(
            self._get_param("repositoryName"), self._get_param("registryId"), self._get_param("imageIds")))
        wanted = self._get_param("filter") or {}
        tag_status = wanted.get("tagStatus", "ANY")
        if tag_status == "TAGGED":
            images = [i for i in images if i.image_tags]
        elif tag_status == "UNTAGGED":
            images = [i for i in images if not i.image_tags]
        # ECR lists ACTIVE images only, unless the filter asks for others.
        image_status = wanted.get("imageStatus", "ACTIVE")
        if image_status != "ANY":
            images = [i for i in images if status(i) == image_status]
        # Pages: at most maxResults (1 to 1,000), fewer where POST /_strict/pages says so (ECR may
        # return fewer than asked), in a stable order; the token is the offset of the next page.
        if not self._get_param("imageIds"):
            size = min(int(self._get_param("maxResults") or 100), STATE.page_sizes.get(self._get_param("repositoryName"), 1000))
            start = int(self._get_param("nextToken") or 0)
            images.sort(key=lambda i: (float(i.image_pushed_at or 0), i.get_image_digest()))
            following = start + size if start + size < len(images) else None
            images = images[start:start + size]
        else:
            following = None
        details = []
        for image in images:
            detail = {
                "registryId": image.registry_id,
                "repositoryName": image.repository_name,
                "imageDigest": image.get_image_digest(),
                "imagePushedAt": image.image_pushed_at,
                "imageManifestMediaType": image.image_manifest_media_type,
                "imageStatus": status(image),
            }
            if image.image_tags:
                detail["imageTags"] = list(image.image_tags)
            detail.update(artifact_fields(image.image_manifest))
            detail.update(scan_fields(image.repository_name, image.get_image_digest()))
            details.append(detail)
    answer = {"imageDetails": details}
    if following is not None:
        answer["nextToken"] = str(following)
    return ActionResult(answer)


FILTER = re.compile(r"^[0-9a-zA-Z._*-]{1,128}$")


def tag_is_immutable(repo, tag):
    """ECR's rule: IMMUTABLE, or IMMUTABLE_WITH_EXCLUSION and no filter matches the tag, or
    MUTABLE_WITH_EXCLUSION and a filter matches it (moto ignores the filters)."""
    mode = repo.image_tag_mutability
    filters = [f.get("filter", "") for f in (repo.image_tag_mutability_exclusion_filters or [])]
    excluded = any(wildcard(f).match(tag) for f in filters)
    return (mode == "IMMUTABLE" or (mode == "IMMUTABLE_WITH_EXCLUSION" and not excluded)
            or (mode == "MUTABLE_WITH_EXCLUSION" and excluded))


moto_validate_filters = ECRBackend._validate_mutability_exclusion_filters


def strict_validate_filters(self, filters):
    """1 to 5 filters, each `^[0-9a-zA-Z._*-]{1,128}$` (moto leaves both to botocore)."""
    if filters is not None:
        if not 1 <= len(filters) <= 5:
            return f"the list must hold 1 to 5 filters, got {len(filters)}"
        for f in filters:
            if not FILTER.match(f.get("filter", "")):
                return f"filter {f.get('filter')!r} must satisfy regular expression '^[0-9a-zA-Z._*-]{{1,128}}$'"
    return moto_validate_filters(self, filters)


def describe_repositories_response(self):
    """DescribeRepositories pages a listing (maxResults 1 to 1,000, default 100; nextToken) by name,
    at most the size POST /_strict/pages set for it; by name (repositoryNames), one answer."""
    from moto.core.responses import ActionResult
    names = self._get_param("repositoryNames")
    with STATE.lock:
        repositories = self.ecr_backend.describe_repositories(repository_names=names, registry_id=self._get_param("registryId"))
        if names:
            return ActionResult({"repositories": repositories, "failures": []})
        repositories = sorted(repositories, key=lambda r: r.name)
        size = min(int(self._get_param("maxResults") or 100), STATE.repository_page_size)
        return ActionResult(page("repositories", repositories, size, self._get_param("nextToken")))


def update_image_storage_class_response(self):
    """UpdateImageStorageClass, which moto lacks: ARCHIVE archives the image; STANDARD starts
    its restore (ACTIVATING; ECR takes up to 20 minutes, here it stays so until pushed)."""
    from moto.core.responses import ActionResult
    with STATE.lock:
        backend = self.ecr_backend
        name = self._get_param("repositoryName")
        repo = backend.repositories.get(name)
        if repo is None:
            raise RepositoryNotFoundException(name, self._get_param("registryId") or backend.account_id)
        image_id = self._get_param("imageId") or {}
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        image = next((i for i in repo.images
                      if (digest and i.get_image_digest() == digest) or (not digest and tag in i.image_tags)), None)
        if image is None:
            raise ImageNotFoundException(json.dumps(image_id), name, repo.registry_id)
        target = self._get_param("targetStorageClass")
        if target == "ARCHIVE":
            image.strict_status = "ARCHIVED"
        elif target == "STANDARD" and status(image) == "ARCHIVED":
            image.strict_status = "ACTIVATING"
        elif target not in ("ARCHIVE", "STANDARD"):
            raise InvalidParameterException(f"Invalid parameter at 'targetStorageClass': {target}")
        return ActionResult({"registryId": repo.registry_id, "repositoryName": name,
                             "imageId": {"imageDigest": image.get_image_digest()}, "imageStatus": status(image)})


def install():
    """Patches moto's ECR where it is not ECR (see strict_ecr.py for the list), and its KMS where
    promotion records need KMS (kms.py)."""
    ECRBackend.put_image = strict_put_image
    ECRBackend._validate_mutability_exclusion_filters = strict_validate_filters
    ECRResponse.describe_images = describe_images_response
    ECRResponse.describe_repositories = describe_repositories_response
    ECRBackend.batch_delete_image = strict_batch_delete_image
    ECRBackend.batch_get_image = strict_batch_get_image
    ECRResponse.batch_get_image = batch_get_image_response
    ECRResponse.update_image_storage_class = update_image_storage_class_response
    ECRResponse.list_image_referrers = list_image_referrers_response
    ECRResponse.describe_image_signing_status = describe_image_signing_status_response
    ECRResponse.create_pull_through_cache_rule = create_pull_through_cache_rule_response
    ECRResponse.describe_pull_through_cache_rules = describe_pull_through_cache_rules_response
    ECRResponse.batch_get_repository_scanning_configuration = batch_get_repository_scanning_configuration_response
    ECRBackend.put_registry_scanning_configuration = without_rules_allowed(ECRBackend.put_registry_scanning_configuration)
    accept_current_lifecycle_policies()
    ECRResponse.get_account_setting = get_account_setting_response
    ECRResponse.get_authorization_token = get_authorization_token_response
    ECRResponse.put_account_setting = put_account_setting_response
    ECRResponse.get_download_url_for_layer = get_download_url_for_layer_response
    ECRBackend.upload_layer_part = strict_upload_layer_part(ECRBackend.upload_layer_part)
    ECRBackend.complete_layer_upload = strict_complete_layer_upload(ECRBackend.complete_layer_upload)
    kms.install()

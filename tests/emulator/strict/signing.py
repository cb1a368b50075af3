"""What ECR tells of an image beyond its manifest, which moto lacks: its referrers
(ListImageReferrers), ECR managed signing's status (DescribeImageSigningStatus), and
its scan status and findings summary in DescribeImages (set per image by a hook)."""

import json

from moto.ecr.exceptions import ImageNotFoundException, InvalidParameterException, RepositoryNotFoundException

from .common import page
from .state import STATE


def artifact_fields(manifest):
    """What ECR tells of an artifact: `subjectManifestDigest` when the manifest refers to
    another image, and `artifactMediaType` (the artifact's type, else its config's)."""
    try:
        parsed = json.loads(manifest)
    except ValueError:
        return {}
    fields = {}
    subject = (parsed.get("subject") or {}).get("digest")
    if subject:
        fields["subjectManifestDigest"] = subject
    media_type = parsed.get("artifactType") or (parsed.get("config") or {}).get("mediaType")
    if media_type:
        fields["artifactMediaType"] = media_type
    return fields


def image_status(image):
    """ACTIVE, ARCHIVED or ACTIVATING (moto has no storage classes)."""
    return getattr(image, "strict_status", "ACTIVE")


def scan_fields(repository, digest):
    """DescribeImages' `imageScanStatus` and `imageScanFindingsSummary` as POST /_strict/scan set
    them: a basic scan reports COMPLETE, an enhanced (continuous) one ACTIVE; none: never scanned."""
    scan = STATE.scans.get((repository, digest))
    if scan is None:
        return {}
    fields = {"imageScanStatus": {"status": scan["status"], "description": scan.get("description", "")}}
    if scan.get("counts") is not None:
        fields["imageScanFindingsSummary"] = {"findingSeverityCounts": scan["counts"], "imageScanCompletedAt": scan.get("at", 0)}
    return fields


def repository_of(backend, params):
    name = params("repositoryName")
    repo = backend.repositories.get(name)
    if repo is None:
        raise RepositoryNotFoundException(name, params("registryId") or backend.account_id)
    return repo


def list_image_referrers_response(self):
    """ListImageReferrers, computed from the stored manifests with a `subject`: filtered by
    artifact type (1 to 5) and status (ACTIVE unless asked), in pages of maxResults (1 to 50)."""
    from moto.core.responses import ActionResult
    with STATE.lock:
        repo = repository_of(self.ecr_backend, self._get_param)
        subject = (self._get_param("subjectId") or {}).get("imageDigest")
        if not subject:
            raise InvalidParameterException("Invalid parameter at 'subjectId': imageDigest is required")
        wanted = self._get_param("filter") or {}
        types = wanted.get("artifactTypes")
        if types is not None and not 1 <= len(types) <= 5:
            raise InvalidParameterException("Invalid parameter at 'filter.artifactTypes': 1 to 5 artifact types")
        status_filter = wanted.get("artifactStatus", "ACTIVE")
        max_results = int(self._get_param("maxResults") or 50)
        if not 1 <= max_results <= 50:
            raise InvalidParameterException("Invalid parameter at 'maxResults': 1 to 50")
        referrers = []
        for image in repo.images:
            fields = artifact_fields(image.image_manifest)
            if fields.get("subjectManifestDigest") != subject:
                continue
            if types and fields.get("artifactMediaType") not in types:
                continue
            if status_filter != "ANY" and image_status(image) != status_filter:
                continue
            referrer = {"digest": image.get_image_digest(), "mediaType": image.image_manifest_media_type,
                        "size": len(image.image_manifest.encode("utf-8")), "artifactStatus": image_status(image)}
            if fields.get("artifactMediaType"):
                referrer["artifactType"] = fields["artifactMediaType"]
            annotations = json.loads(image.image_manifest).get("annotations")
            if annotations:
                referrer["annotations"] = annotations
            referrers.append(referrer)
    return ActionResult(page("referrers", referrers, max_results, self._get_param("nextToken")))


def describe_image_signing_status_response(self):
    """DescribeImageSigningStatus: one entry per signing profile, as POST /_strict/signing set
    them (none: the image was pushed without managed signing); an unknown image is
    ImageNotFoundException."""
    from moto.core.responses import ActionResult
    with STATE.lock:
        repo = repository_of(self.ecr_backend, self._get_param)
        image_id = self._get_param("imageId") or {}
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        image = next((i for i in repo.images
                      if (digest and i.get_image_digest() == digest) or (not digest and tag in i.image_tags)), None)
        if image is None:
            raise ImageNotFoundException(json.dumps(image_id), repo.name, repo.registry_id)
        statuses = STATE.signing.get((repo.name, image.get_image_digest()), [])
        return ActionResult({"repositoryName": repo.name, "registryId": repo.registry_id,
                             "imageId": {"imageDigest": image.get_image_digest()},
                             "signingStatuses": [dict(s) for s in statuses]})


def set_scan(body):
    """POST /_strict/scan {"repository", "digest", "status", "counts"?}."""
    STATE.scans[(body["repository"], body["digest"])] = body


def set_signing(body):
    """POST /_strict/signing {"repository", "digest", "status", "profile"?, "failureCode"?, "failureReason"?}:
    that profile's signing status for the image (replacing any earlier one of the profile)."""
    key = (body["repository"], body["digest"])
    profile = body.get("profile", "arn:aws:signer:eu-west-1:123456789012:/signing-profiles/ecr_retag_tests")
    entry = {"signingProfileArn": profile, "status": body["status"]}
    for field in ("failureCode", "failureReason"):
        if field in body:
            entry[field] = body[field]
    STATE.signing[key] = [s for s in STATE.signing.get(key, []) if s["signingProfileArn"] != profile] + [entry]

"""The usual alternative, as public retaggers write it: a Python 3 + boto3 handler.

BatchGetImage, then one PutImage per tag in sequence, catching
ImageAlreadyExistsException. A comparison peer for bench/run, not product code.
Tags come from RETAG_TEMPLATES (JSON list, "{tag}" replaced by the pushed tag),
and only SemVer tags are retagged, as the benchmark's rule set does.
"""
import json
import os
import re

import boto3

ecr = boto3.client("ecr")
TEMPLATES = json.loads(os.environ["RETAG_TEMPLATES"])
SEMVER = re.compile(r"^v?\d+\.\d+\.\d+$")


def handler(event, context):
    detail = event["detail"]
    tag = detail.get("image-tag")
    if detail.get("action-type") != "PUSH" or detail.get("result") != "SUCCESS" or not tag or not SEMVER.match(tag):
        return {"status": "ignored"}
    repository, digest = detail["repository-name"], detail["image-digest"]
    image = ecr.batch_get_image(
        repositoryName=repository,
        imageIds=[{"imageDigest": digest}],
        acceptedMediaTypes=[
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ],
    )["images"][0]
    results = []
    for template in TEMPLATES:
        new_tag = template.replace("{tag}", tag)
        try:
            ecr.put_image(
                repositoryName=repository,
                imageManifest=image["imageManifest"],
                imageManifestMediaType=image["imageManifestMediaType"],
                imageDigest=digest,
                imageTag=new_tag,
            )
            results.append({"tag": new_tag, "outcome": "created"})
        except ecr.exceptions.ImageAlreadyExistsException:
            results.append({"tag": new_tag, "outcome": "unchanged"})
    return {"status": "applied", "tags": results}

"""Seeds and shows the local ECR emulator for scripts/demo and scripts/invoke (boto3 comes with moto).

  local_registry.py seed                  create the repositories the events/ samples name and push their images
  local_registry.py show [REPOSITORY...]  print every tag of the repositories (default team/api) and its digest
  local_registry.py queue                 create the local event queue (moto's SQS, beside the ECR) and print its URL
"""
import hashlib
import os
import sys

import boto3

from local_lambda import short  # digests shortened one way in every script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Repository -> (resource tags, [(fixture, media type, tag the sample events push)]), in push order;
# no tag: pushed by digest (a signature, which refers to the docker-v2 image).
SAMPLES = {
    "team/api": ({}, [
        ("docker-v2", "application/vnd.docker.distribution.manifest.v2+json", "v1.4.2"),
        ("oci-index-no-mediatype", "application/vnd.oci.image.index.v1+json", "v2.0.0"),
        ("oci-manifest", "application/vnd.oci.image.manifest.v1+json", "main-3f9c2a1"),
        ("notation-signature", "application/vnd.oci.image.manifest.v1+json", None),
    ]),
    # events/sqs-batch.json: a push here; its third message names team/gone, which does not exist.
    "team/web": ({}, [("docker-v2", "application/vnd.docker.distribution.manifest.v2+json", "v1.4.2")]),
    # The platform-*.json samples, for examples/promotion-rules.json (opt-in tag retag=enabled).
    "platform/web": ({"retag": "enabled"}, [
        ("docker-v2", "application/vnd.docker.distribution.manifest.v2+json", "v1.3.0"),
        ("docker-manifest-list", "application/vnd.docker.distribution.manifest.list.v2+json", "v1.2.9"),
        ("oci-manifest", "application/vnd.oci.image.manifest.v1+json", "latest"),
        ("notation-signature", "application/vnd.oci.image.manifest.v1+json", None),
    ]),
    # events/promote-push.json, for examples/promotion-to-prod.json: dev/api into prod/api (empty),
    # the image's Notation signature along with it.
    "dev/api": ({}, [
        ("docker-v2", "application/vnd.docker.distribution.manifest.v2+json", "v1.4.2"),
        ("notation-signature", "application/vnd.oci.image.manifest.v1+json", None),
    ]),
    "prod/api": ({}, []),
}


def client():
    return boto3.client("ecr", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])


def seed():
    ecr = client()
    for repository, (resource_tags, images) in SAMPLES.items():
        ecr.create_repository(repositoryName=repository, tags=[{"Key": k, "Value": v} for k, v in resource_tags.items()])
        for name, media_type, tag in images:
            with open(os.path.join(ROOT, "tests/fixtures/manifests", name + ".json"), "rb") as f:
                body = f.read()
            ecr.put_image(repositoryName=repository, imageManifest=body.decode(), imageManifestMediaType=media_type,
                          **({"imageTag": tag} if tag else {}))
            print(f"    pushed {repository + ':' + (tag or '(untagged)'):<26} "
                  f"{short('sha256:' + hashlib.sha256(body).hexdigest())}  ({name})")
    # Promotion mounts blobs between repositories: an account setting, off unless set.
    ecr.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")


def show(repositories):
    ecr = client()
    for repository in repositories or ["team/api"]:
        images = ecr.describe_images(repositoryName=repository)["imageDetails"]
        rows = sorted((tag, image["imageDigest"]) for image in images for tag in image.get("imageTags", []))
        for tag, digest in rows:
            print(f"    {repository}:{tag:<24} {short(digest)}")


def queue():
    """The event queue a fan-out (events/reconcile-fan-out.json) sends its sweeps to."""
    sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
    print(sqs.create_queue(QueueName="ecr-retag-events")["QueueUrl"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["seed"]:
        seed()
    elif sys.argv[1:2] == ["queue"]:
        queue()
    elif sys.argv[1:2] == ["show"]:
        show(sys.argv[2:])
    else:
        sys.exit(__doc__)

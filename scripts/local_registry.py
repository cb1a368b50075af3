"""Seeds and shows the local ECR emulator for scripts/demo (boto3 comes with moto).

  local_registry.py seed   create team/api and push the sample images the events/ samples name
  local_registry.py show   print every tag of team/api and the digest it points at
  local_registry.py report summarise a function response (JSON on stdin), one line per tag
"""
import hashlib
import json
import os
import sys

import boto3

REPOSITORY = "team/api"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = [  # (fixture, media type, tag the sample events push)
    ("docker-v2", "application/vnd.docker.distribution.manifest.v2+json", "v1.4.2"),
    ("oci-index-no-mediatype", "application/vnd.oci.image.index.v1+json", "v2.0.0"),
    ("oci-manifest", "application/vnd.oci.image.manifest.v1+json", "main-3f9c2a1"),
]


def client():
    return boto3.client("ecr", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])


def seed():
    ecr = client()
    ecr.create_repository(repositoryName=REPOSITORY)
    for name, media_type, tag in IMAGES:
        with open(os.path.join(ROOT, "tests/fixtures/manifests", name + ".json"), "rb") as f:
            body = f.read()
        ecr.put_image(repositoryName=REPOSITORY, imageManifest=body.decode(),
                      imageManifestMediaType=media_type, imageTag=tag)
        print(f"  pushed {REPOSITORY}:{tag}  sha256:{hashlib.sha256(body).hexdigest()[:12]}  ({name})")


def show():
    images = client().describe_images(repositoryName=REPOSITORY)["imageDetails"]
    rows = sorted((tag, image["imageDigest"]) for image in images for tag in image.get("imageTags", []))
    for tag, digest in rows:
        print(f"  {REPOSITORY}:{tag:<24} {digest[:19]}")


def report():
    text = sys.stdin.read()
    try:
        r = json.loads(text)
    except ValueError:
        print("  " + text.strip())
        return
    if "errorType" in r:
        print(f"  error {r['errorType']}: {r.get('errorMessage')}")
        return
    print(f"  status: {r['status']}" + (f" ({r['reason']})" if r.get("reason") else ""))
    for repo in r.get("repositories", []):  # a reconcile sweep's answer
        print(f"    {repo['repository']}: {repo['images_seen']} images, {repo['tags_written']} tags written, "
              f"{repo['already_correct']} already correct, {repo['conflicts']} conflicts, {repo['failed']} failed")
        for c in repo["changes"]:
            print(f"      {c['tag']:<22} {c['outcome']:<12} on {c['digest'][:19]}…")
    for t in r.get("tags", []):
        detail = f"  {t['detail']}" if t.get("detail") else ""
        print(f"    {t['tag']:<24} {t['outcome']:<12} rules: {', '.join(t['rules'])}{detail}")


if __name__ == "__main__":
    {"seed": seed, "show": show, "report": report}[sys.argv[1]]()

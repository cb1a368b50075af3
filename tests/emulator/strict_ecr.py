"""A local ECR for tests and the demo: moto's server, made strict where moto is not ECR.

Run:  python tests/emulator/strict_ecr.py [--host 127.0.0.1] [--port 0]
It prints the port it listens on as the first line of stdout. With
--exit-on-stdin-eof it exits when its standard input closes, so a test process
that dies takes it along.

Where moto diverges from ECR in a way that could hide a bug in ecr-retag, this
file makes it behave like ECR (per the ECR API reference and observed behaviour):

- PutImage computes the digest as sha256 of the manifest bytes, as ECR does,
  and refuses an `imageDigest` that does not match them
  (ImageDigestDoesNotMatchException). Moto invents digests and accepts any.
- PutImage to a missing repository is RepositoryNotFoundException (moto: HTML 500).
- PutImage of an existing tag in a tag-immutable repository is
  ImageTagAlreadyExistsException, even when the tag already points at the same
  image (moto: ImageAlreadyExistsException).
- Moving a tag in a mutable repository leaves the old image in place, untagged
  (moto deletes it when that was its last tag).
- BatchGetImage answers each requested id with the id as asked (moto echoes the
  image's last tag), names the asked-for digest in failures, and reports
  InvalidImageDigest / ImageTagDoesNotMatchDigest / MissingDigestAndTag.
- BatchGetImage honours `acceptedMediaTypes`: when the stored type is not
  accepted (or the parameter is missing), ECR may convert the manifest; here the
  bytes are re-serialised, so a client that forgets the parameter and puts the
  bytes back gets a digest mismatch, as it would against ECR.
- PutImage and BatchGetImage are atomic with respect to each other, as ECR's are.

Not emulated: layer and referenced-image existence checks, tag-mutability
exclusion filters, pagination, quotas.

Test hooks (not ECR), under /_strict/:
- GET  /_strict/calls?repository=NAME  ->  {"BatchGetImage": n, "PutImage": n, ...}
- POST /_strict/reset                  ->  forget every repository and count
"""

import argparse
import hashlib
import io
import json
import os
import sys
import threading
from collections import Counter, defaultdict
from urllib.parse import parse_qs

from moto.core.exceptions import JsonRESTError
from moto.ecr import models as ecr_models
from moto.ecr.exceptions import (
    ImageAlreadyExistsException,
    InvalidParameterException,
    RepositoryNotFoundException,
)
from moto.ecr.models import ECRBackend, Image
from moto.ecr.responses import ECRResponse
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

LOCK = threading.RLock()
CALLS: dict = defaultdict(Counter)


class ImageTagAlreadyExistsException(JsonRESTError):
    def __init__(self, repository, registry_id, tag):
        super().__init__(
            "ImageTagAlreadyExistsException",
            f"The image tag '{tag}' already exists in the '{repository}' repository "
            f"with registry id '{registry_id}' and cannot be overwritten because the "
            "repository is immutable.",
        )


class ImageDigestDoesNotMatchException(JsonRESTError):
    def __init__(self, given, actual):
        super().__init__(
            "ImageDigestDoesNotMatchException",
            f"The provided digest '{given}' does not match the digest '{actual}' of the manifest",
        )


def sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def strict_put_image(self, repository_name, image_manifest, image_tag,
                     image_manifest_mediatype=None, digest=None):
    with LOCK:
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
        if holder is not None and repo.is_tag_immutable():
            raise ImageTagAlreadyExistsException(repository_name, repo.registry_id, image_tag)
        existing = next((i for i in repo.images if i.get_image_digest() == actual), None)
        if existing is not None and holder is existing:
            raise ImageAlreadyExistsException(
                repository_name=repository_name, registry_id=repo.registry_id,
                digest=actual, image_tag=image_tag)
        if holder is not None:
            holder.image_tags.remove(image_tag)
            holder.image_tag = holder.image_tags[-1] if holder.image_tags else None
        if existing is not None:
            if image_tag:
                existing.update_tag(image_tag)
            return existing
        image = Image(self.account_id, image_tag, image_manifest, repository_name,
                      media_type, actual, registry_id=repo.registry_id)
        repo.images.append(image)
        return image


def strict_batch_get_image(self, repository_name, registry_id=None, image_ids=None,
                           accepted_media_types=None):
    with LOCK:
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


ECRBackend.put_image = strict_put_image
ECRBackend.batch_get_image = strict_batch_get_image
ECRResponse.batch_get_image = batch_get_image_response


class Counting:
    """WSGI middleware: counts ECR calls per repository and serves the /_strict/ hooks."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/_strict/calls":
            repo = parse_qs(environ.get("QUERY_STRING", "")).get("repository", [""])[0]
            with LOCK:
                body = json.dumps(dict(CALLS.get(repo, Counter()))).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/_strict/reset" and environ.get("REQUEST_METHOD") == "POST":
            with LOCK:
                CALLS.clear()
                for backends in ecr_models.ecr_backends.values():
                    for backend in backends.values():
                        backend.repositories.clear()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
            return [b"{}"]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("AmazonEC2ContainerRegistry_V20150921."):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            try:
                repo = json.loads(raw or b"{}").get("repositoryName", "")
            except ValueError:
                repo = ""
            with LOCK:
                CALLS[repo][target.split(".", 1)[1]] += 1
            environ["wsgi.input"] = io.BytesIO(raw)
        return self.app(environ, start_response)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()

    app = Counting(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    os.environ.setdefault("MOTO_PORT", str(server.port))
    print(server.port, flush=True)

    def exit_when_stdin_closes():
        try:
            while sys.stdin.read(4096):
                pass
        except Exception:
            pass
        os._exit(0)

    if args.exit_on_stdin_eof:
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

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
- An image holds at most 1,000 tags; PutImage of one more is LimitExceededException
  (moto has no limit). POST /_strict/limits lowers it for one repository, so a
  test need not write a thousand tags first.
- DescribeImages honours `filter.tagStatus` (moto lists every image), and push
  times have ECR's millisecond precision (moto: whole seconds), so the order of
  two pushes in one second is known.
- PutImage, BatchGetImage and BatchDeleteImage are atomic with respect to each
  other, as ECR's are.

Not emulated: layer and referenced-image existence checks, tag-mutability
exclusion filters, pagination; quotas only on request (below).

Test hooks (not ECR), under /_strict/:
- GET  /_strict/calls?repository=NAME  ->  {"BatchGetImage": n, "PutImage": n, ..., "writes": {"tag": n}}
  (calls as received, faults included; "writes": PutImages that changed where a tag points;
  "deletes": tags removed by BatchDeleteImage)
- GET  /_strict/function-calls[?repository=NAME]  ->  the calls made by ecr-retag itself
  (User-Agent app/ecr-retag), all or on one repository (ListTagsForResource: the ARN's)
- POST /_strict/faults  {"operation": "PutImage", "repository": NAME, "tag": TAG (optional),
                         "kind": "throttle" | "500" | "503" | "reset" | "hang" | "late", "times": N,
                         "seconds": S (for "late")}
  The next N matching calls fail that way: ThrottlingException, ServerException (500),
  a bare 503, the connection closed without an answer, or an answer (500) only after
  HANG_SECONDS, past the client's per-attempt timeout. A faulted call changes nothing,
  except "late": the call is carried out normally, but only after S seconds. With S past
  the client's attempt timeout the client has given up (and retries) while the call is
  still to land, as a request ECR received keeps going when its caller stops waiting.
- POST /_strict/quota  {"operation": "PutImage", "prefix": P, "per_second": N}  ->  calls of that
  operation on repositories whose names start with P share a token bucket of N per second
  (ECR's quotas are per account); calls over it answer ThrottlingException. /_strict/calls
  then reports "throttled" (by operation) and "redundant" (PutImages of a tag already on
  the image, answered ImageAlreadyExistsException).
- POST /_strict/limits  {"repository": NAME, "tags_per_image": N}  ->  that repository's images
  hold at most N tags (default 1,000, ECR's)
- POST /_strict/reset                  ->  forget every repository, count and fault

With --latency-ms N every ECR call takes N ms more, outside the emulator's lock, as the
network and service time of a real region would (for benchmarks: concurrency shows).

With --function-ops A,B the calls ecr-retag makes (recognised by its User-Agent) are
limited to those operations; any other is refused with AccessDeniedException, as a
least-privilege IAM policy would, and recorded.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import threading
import time
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
WRITES: dict = defaultdict(Counter)
DELETES: dict = defaultdict(Counter)
FUNCTION_CALLS: dict = defaultdict(Counter)
FAULTS: list = []
TAGS_PER_IMAGE = 1000
QUOTAS: list = []
THROTTLED: dict = defaultdict(Counter)
REDUNDANT: dict = defaultdict(Counter)
TAG_LIMITS: dict = {}
HANG_SECONDS = 4
FUNCTION_MARKER = "app/ecr-retag"


class ImageTagAlreadyExistsException(JsonRESTError):
    def __init__(self, repository, registry_id, tag):
        super().__init__(
            "ImageTagAlreadyExistsException",
            f"The image tag '{tag}' already exists in the '{repository}' repository "
            f"with registry id '{registry_id}' and cannot be overwritten because the "
            "repository is immutable.",
        )


class LimitExceededException(JsonRESTError):
    def __init__(self, limit):
        super().__init__(
            "LimitExceededException",
            f"The operation did not succeed because the image already has {limit} tags, the maximum per image.",
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
            if image_tag:
                REDUNDANT[repository_name][image_tag] += 1
            raise ImageAlreadyExistsException(
                repository_name=repository_name, registry_id=repo.registry_id,
                digest=actual, image_tag=image_tag)
        limit = TAG_LIMITS.get(repository_name, TAGS_PER_IMAGE)
        if (existing is not None and image_tag and image_tag not in existing.image_tags
                and len(existing.image_tags) >= limit):
            raise LimitExceededException(limit)
        if image_tag:
            WRITES[repository_name][image_tag] += 1
        if holder is not None:
            holder.image_tags.remove(image_tag)
            holder.image_tag = holder.image_tags[-1] if holder.image_tags else None
        if existing is not None:
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


moto_batch_delete_image = ECRBackend.batch_delete_image


def strict_batch_delete_image(self, repository_name, registry_id=None, image_ids=None):
    with LOCK:
        response = moto_batch_delete_image(self, repository_name, registry_id, image_ids)
        for image_id in image_ids or []:
            if "imageTag" in image_id and not any(f["imageId"].get("imageTag") == image_id["imageTag"]
                                                  for f in response["failures"]):
                DELETES[repository_name][image_id["imageTag"]] += 1
        return response


def describe_images_response(self):
    from moto.core.responses import ActionResult
    with LOCK:
        images = list(self.ecr_backend.describe_images(
            self._get_param("repositoryName"), self._get_param("registryId"), self._get_param("imageIds")))
        status = (self._get_param("filter") or {}).get("tagStatus", "ANY")
        if status == "TAGGED":
            images = [i for i in images if i.image_tags]
        elif status == "UNTAGGED":
            images = [i for i in images if not i.image_tags]
        details = []
        for image in images:
            detail = {
                "registryId": image.registry_id,
                "repositoryName": image.repository_name,
                "imageDigest": image.get_image_digest(),
                "imagePushedAt": image.image_pushed_at,
                "imageManifestMediaType": image.image_manifest_media_type,
            }
            if image.image_tags:
                detail["imageTags"] = list(image.image_tags)
            details.append(detail)
    return ActionResult({"imageDetails": details})


ECRBackend.put_image = strict_put_image
ECRResponse.describe_images = describe_images_response
ECRBackend.batch_delete_image = strict_batch_delete_image
ECRBackend.batch_get_image = strict_batch_get_image
ECRResponse.batch_get_image = batch_get_image_response


def respond(start_response, status, body, content_type="application/json", headers=()):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))), *headers])
    return [data]


def aws_error(start_response, status, code, message):
    return respond(start_response, status, {"__type": code, "message": message},
                   "application/x-amz-json-1.1", [("x-amzn-ErrorType", code)])


class Counting:
    """WSGI middleware: counts ECR calls, injects faults, limits the function's
    operations, and serves the /_strict/ hooks."""

    def __init__(self, app, function_ops=None, latency=0.0):
        self.app = app
        self.function_ops = function_ops
        self.latency = latency

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if path.startswith("/_strict/"):
            return self.hook(path, method, environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("AmazonEC2ContainerRegistry_V20150921."):
            return self.app(environ, start_response)
        operation = target.split(".", 1)[1]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        repo = (request.get("repositoryName") or (request.get("repositoryNames") or [""])[0]
                or request.get("resourceArn", "").partition(":repository/")[2])
        from_function = FUNCTION_MARKER in environ.get("HTTP_USER_AGENT", "") + environ.get("HTTP_X_AMZ_USER_AGENT", "")
        with LOCK:
            CALLS[repo][operation] += 1
            if from_function:
                FUNCTION_CALLS[repo][operation] += 1
            taken = self.take_fault(operation, repo, request.get("imageTag"))
            fault = taken["kind"] if taken else None
            if fault is None and self.over_quota(operation, repo):
                fault = "throttle"
                THROTTLED[repo][operation] += 1
        if self.latency:
            time.sleep(self.latency)
        if from_function and self.function_ops is not None and operation not in self.function_ops:
            return aws_error(start_response, "400 Bad Request", "AccessDeniedException",
                             f"ecr-retag is not allowed to call {operation}")
        if fault == "throttle":
            return aws_error(start_response, "400 Bad Request", "ThrottlingException", "Rate exceeded")
        if fault == "500":
            return aws_error(start_response, "500 Internal Server Error", "ServerException", "injected")
        if fault == "503":
            return respond(start_response, "503 Service Unavailable", b"Service Unavailable", "text/plain")
        if fault == "reset":
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                import socket
                sock.shutdown(socket.SHUT_RDWR)
            return respond(start_response, "500 Internal Server Error", b"", "text/plain")
        if fault == "hang":
            time.sleep(HANG_SECONDS)
            return aws_error(start_response, "500 Internal Server Error", "ServerException", "hung")
        if fault == "late":
            time.sleep(float(taken.get("seconds", HANG_SECONDS)))
        return self.app(environ, start_response)

    @staticmethod
    def over_quota(operation, repo):
        """A token bucket per quota, shared by every repository under its prefix (as an account's is)."""
        for quota in QUOTAS:
            if quota["operation"] != operation or not repo.startswith(quota["prefix"]):
                continue
            now = time.monotonic()
            rate = float(quota["per_second"])
            quota["tokens"] = min(rate, quota.get("tokens", rate) + (now - quota.get("at", now)) * rate)
            quota["at"] = now
            if quota["tokens"] < 1:
                return True
            quota["tokens"] -= 1
        return False

    @staticmethod
    def take_fault(operation, repo, tag):
        for fault in FAULTS:
            if (fault["operation"] == operation and fault.get("repository", repo) == repo
                    and fault.get("tag", tag) == tag and fault["times"] > 0):
                fault["times"] -= 1
                return fault
        return None

    def hook(self, path, method, environ, start_response):
        if path == "/_strict/calls":
            repo = parse_qs(environ.get("QUERY_STRING", "")).get("repository", [""])[0]
            with LOCK:
                body = dict(CALLS.get(repo, Counter()), writes=dict(WRITES.get(repo, Counter())),
                            deletes=dict(DELETES.get(repo, Counter())),
                            throttled=dict(THROTTLED.get(repo, Counter())),
                            redundant=dict(REDUNDANT.get(repo, Counter())))
            return respond(start_response, "200 OK", body)
        if path == "/_strict/function-calls":
            repo = parse_qs(environ.get("QUERY_STRING", "")).get("repository", [None])[0]
            with LOCK:
                if repo is not None:
                    return respond(start_response, "200 OK", dict(FUNCTION_CALLS.get(repo, Counter())))
                return respond(start_response, "200 OK", dict(sum(FUNCTION_CALLS.values(), Counter())))
        if method == "POST" and path in ("/_strict/faults", "/_strict/quota", "/_strict/limits"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length))
            with LOCK:
                if path == "/_strict/faults":
                    FAULTS.append(body)
                elif path == "/_strict/quota":
                    QUOTAS.append(body)
                else:
                    TAG_LIMITS[body["repository"]] = int(body["tags_per_image"])
            return respond(start_response, "200 OK", {})
        if path == "/_strict/reset" and method == "POST":
            with LOCK:
                TAG_LIMITS.clear()
                QUOTAS.clear()
                THROTTLED.clear()
                REDUNDANT.clear()
                CALLS.clear()
                WRITES.clear()
                DELETES.clear()
                FUNCTION_CALLS.clear()
                FAULTS.clear()
                for backends in ecr_models.ecr_backends.values():
                    for backend in backends.values():
                        backend.repositories.clear()
            return respond(start_response, "200 OK", {})
        return respond(start_response, "404 Not Found", {})


class NoDelayHandler(MotoRequestHandler):
    """Answers go out at once: without TCP_NODELAY, the response body waits for the
    client's delayed ACK of the headers (40 ms on Linux), on every call."""

    def setup(self):
        super().setup()
        import socket
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--function-ops", help="comma-separated operations ecr-retag may call")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every ECR call")
    args = parser.parse_args()

    function_ops = set(args.function_ops.split(",")) if args.function_ops else None
    app = Counting(DomainDispatcherApplication(create_backend_app), function_ops, args.latency_ms / 1000)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=NoDelayHandler)
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

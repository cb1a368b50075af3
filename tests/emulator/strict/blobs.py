"""Blobs as ECR keeps them, for promotion into another repository (moto keeps manifests only):
which blobs each repository holds, the account setting BLOB_MOUNTING, PutImage's checks that a
manifest's blobs and child manifests are in the repository, and the registry API's calls for
blobs (token auth, HEAD, mount, monolithic upload), on the same store as the ECR API.

A repository holds a blob once it was uploaded or mounted there, or when a manifest pushed there
names it. A push that does not come from ecr-retag stands in for `docker push`, which uploads
the blobs before the manifest: its blobs are taken as uploaded. ecr-retag's own PutImage of a
manifest new to the repository gets ECR's checks.
"""

import base64
import hashlib
import json
import re
import uuid
from urllib.parse import parse_qs

from moto.core.exceptions import JsonRESTError
from moto.ecr.exceptions import InvalidParameterException

from .errors import respond
from .state import STATE

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
SETTINGS = {"BLOB_MOUNTING": ("ENABLED", "DISABLED")}
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class LayersNotFoundException(JsonRESTError):
    def __init__(self, repository, registry_id, digests):
        super().__init__("LayersNotFoundException",
                         f"Layers with digests '{digests}' required for pushing image into repository with name "
                         f"'{repository}' in the registry with id '{registry_id}' do not exist")


class ReferencedImagesNotFoundException(JsonRESTError):
    def __init__(self, digests):
        super().__init__("ReferencedImagesNotFoundException",
                         f"Manifest references images that do not exist in the repository: {digests}")


def referenced(manifest):
    """(blob digests, child manifest digests) a manifest names."""
    try:
        parsed = json.loads(manifest)
    except ValueError:
        return [], []
    blobs = [d.get("digest") for d in [parsed.get("config") or {}] + list(parsed.get("layers") or []) if d.get("digest")]
    children = [m.get("digest") for m in parsed.get("manifests") or [] if m.get("digest")]
    return blobs, children


def sizes(manifest):
    try:
        parsed = json.loads(manifest)
    except ValueError:
        return {}
    return {d["digest"]: int(d.get("size") or 0) for d in [parsed.get("config") or {}] + list(parsed.get("layers") or [])
            if d.get("digest")}


def committed(repo):
    """The blobs a manifest stored in the repository names (what ECR lets another repository mount)."""
    return {blob for image in repo.images for blob in referenced(image.image_manifest)[0]}


def check_put(repo, manifest, from_function, exists):
    """ECR's checks of a PutImage: every blob the manifest names, and every child of an index, in the
    repository. Called before the image is stored; `exists`: the manifest is stored there already."""
    blobs, children = referenced(manifest)
    if not from_function or exists:
        # docker push uploaded them first (or an earlier push of the same manifest did).
        for digest, size in sizes(manifest).items():
            repo.layers.setdefault(digest, size)
        return
    missing = [b for b in blobs if b not in repo.layers]
    if missing:
        raise LayersNotFoundException(repo.name, repo.registry_id, missing)
    stored = {image.get_image_digest() for image in repo.images}
    absent = [c for c in children if c not in stored]
    if absent:
        raise ReferencedImagesNotFoundException(absent)
    for digest, size in sizes(manifest).items():
        repo.layers.setdefault(digest, size)


class InvalidLayerException(JsonRESTError):
    def __init__(self, expected, actual):
        super().__init__("InvalidLayerException",
                         f"The layer digest calculation performed by Amazon ECR upon receipt of the image layer ({actual}) "
                         f"does not match the digest specified ({expected})")


class LayerPartTooSmallException(JsonRESTError):
    def __init__(self):
        super().__init__("LayerPartTooSmallException", "Layer parts must be at least 5 MiB in size, but the last")


class LayerAlreadyExistsException(JsonRESTError):
    def __init__(self, digest):
        super().__init__("LayerAlreadyExistsException", f"The image layer {digest} already exists in the associated repository")


class LayerInaccessibleException(JsonRESTError):
    def __init__(self, digest):
        super().__init__("LayerInaccessibleException",
                         f"The specified layer {digest} is not available (the emulator holds bytes only for blobs uploaded to it)")


MIN_PART = 5 * 1024 * 1024


def strict_upload_layer_part(original):
    """UploadLayerPart as moto has it, each part's size remembered for CompleteLayerUpload's check."""
    def upload_layer_part(self, repository_name, upload_id, part_first_byte, part_last_byte, layer_part_blob, registry_id=None):
        with STATE.lock:
            answer = original(self, repository_name, upload_id, part_first_byte, part_last_byte, layer_part_blob, registry_id)
            STATE.part_sizes.setdefault(upload_id, []).append(len(layer_part_blob or b""))
            return answer
    return upload_layer_part


def strict_complete_layer_upload(original):
    """CompleteLayerUpload as ECR checks it: every part but the last at least 5 MiB, the bytes hashing to
    the digest named, a layer not already there; the bytes kept, for GetDownloadUrlForLayer."""
    def complete_layer_upload(self, repository_name, upload_id, layer_digests, registry_id=None):
        with STATE.lock:
            repo = self._get_repository(repository_name, registry_id)
            upload = repo.uploads.get(upload_id)
            if upload is not None:
                parts = STATE.part_sizes.pop(upload_id, [])
                if any(size < MIN_PART for size in parts[:-1]):
                    raise LayerPartTooSmallException()
                actual = "sha256:" + hashlib.sha256(bytes(upload.layer_parts)).hexdigest()
                if layer_digests and layer_digests[0] != actual:
                    raise InvalidLayerException(layer_digests[0], actual)
                if actual in repo.layers and (repo.name, actual) in STATE.blob_bytes:
                    del repo.uploads[upload_id]
                    raise LayerAlreadyExistsException(actual)
                STATE.blob_bytes[(repo.name, actual)] = bytes(upload.layer_parts)
            return original(self, repository_name, upload_id, layer_digests, registry_id)
    return complete_layer_upload


def get_download_url_for_layer_response(self):
    """GetDownloadUrlForLayer: a URL on this emulator that serves the blob's bytes without credentials,
    as ECR's presigned S3 URLs do; for blobs the emulator holds bytes of (uploaded to it)."""
    from moto.core.responses import ActionResult
    from moto.ecr.exceptions import RepositoryNotFoundException
    name, digest = self._get_param("repositoryName"), self._get_param("layerDigest")
    with STATE.lock:
        repo = repository(name)
        if repo is None:
            raise RepositoryNotFoundException(name, self.current_account)
        if digest not in repo.layers:
            raise LayersNotFoundException(name, repo.registry_id, [digest])
        if (name, digest) not in STATE.blob_bytes:
            raise LayerInaccessibleException(digest)
    host = self.headers.get("Host", "localhost")
    return ActionResult({"downloadUrl": f"http://{host}/_strict/blob-bytes/{name}/{digest}", "layerDigest": digest})


def blob_bytes(path):
    """GET /_strict/blob-bytes/<repository>/<digest>: what a download URL serves (None: not held)."""
    name, _, digest = path[len("/_strict/blob-bytes/"):].rpartition("/")
    with STATE.lock:
        return STATE.blob_bytes.get((name, digest))


def get_authorization_token_response(self):
    """GetAuthorizationToken, valid for 12 hours as ECR's are (moto's expired in 2015), for the
    password moto uses (`<registry id>-auth-token`), which the registry API here accepts."""
    import datetime
    from moto.core.responses import ActionResult
    registry_ids = self._get_param("registryIds") or [self.current_account]
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=12)
    return ActionResult({"authorizationData": [
        {"authorizationToken": base64.b64encode(f"AWS:{r}-auth-token".encode()).decode(), "expiresAt": expires,
         "proxyEndpoint": f"https://{r}.dkr.ecr.{self.region}.amazonaws.com"} for r in registry_ids]})


def get_account_setting_response(self):
    from moto.core.responses import ActionResult
    name = self._get_param("name")
    if name not in SETTINGS:
        raise InvalidParameterException(f"Invalid parameter at 'name': {name!r} is not an account setting")
    with STATE.lock:
        return ActionResult({"name": name, "value": STATE.account_settings.get(name, SETTINGS[name][1])})


def put_account_setting_response(self):
    from moto.core.responses import ActionResult
    name, value = self._get_param("name"), self._get_param("value")
    if name not in SETTINGS or value not in SETTINGS[name]:
        raise InvalidParameterException(f"Invalid parameter: account setting {name!r} cannot be {value!r}")
    with STATE.lock:
        STATE.account_settings[name] = value
        return ActionResult({"name": name, "value": value})


# The registry API (https://<registry>.dkr.ecr.<region>.amazonaws.com/v2/...), served beside the ECR API.
# ecr-retag's registry API requests say so in their User-Agent.
FUNCTION_AGENT = "ecr-retag/"
BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})$")
UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<session>[0-9a-f-]*)$")


def error(start_response, status, code, message, headers=()):
    return respond(start_response, status, {"errors": [{"code": code, "message": message}]}, headers=headers)


def authorised(environ):
    """HTTP Basic `AWS:<password>` with the password GetAuthorizationToken gave (moto: `<registry id>-auth-token`)."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return user == "AWS" and password.endswith("-auth-token")


def repository(name):
    """The repository of that name. The emulator serves one registry host for every account and
    region, so the first found (the tests name each repository once)."""
    from moto.ecr.models import ecr_backends
    for backends in ecr_backends.values():
        for b in backends.values():
            if name in b.repositories:
                return b.repositories[name]
    return None


def serve(path, method, environ, start_response):
    """One registry API call; every call is counted on its repository as Registry<What>."""
    if not authorised(environ):
        return error(start_response, "401 Unauthorized", "DENIED", "Not Authorized",
                     headers=[("WWW-Authenticate", 'Basic realm="https://ecr.amazonaws.com/",service="ecr.amazonaws.com"')])
    if path in ("/v2", "/v2/"):
        return respond(start_response, "200 OK", {})
    query = parse_qs(environ.get("QUERY_STRING", ""))
    blob, uploads = BLOB.match(path), UPLOADS.match(path)
    with STATE.lock:
        STATE.caller.function = FUNCTION_AGENT in environ.get("HTTP_USER_AGENT", "")
        if blob and method in ("HEAD", "GET"):
            name, digest = blob.group("name"), blob.group("digest")
            count(name, "RegistryBlobHead")
            repo = repository(name)
            if repo is None:
                return error(start_response, "404 Not Found", "NAME_UNKNOWN", f"repository {name} not found")
            if digest not in repo.layers:
                return error(start_response, "404 Not Found", "BLOB_UNKNOWN", f"blob {digest} not found")
            return respond(start_response, "200 OK", b"", "application/octet-stream",
                           headers=[("Docker-Content-Digest", digest), ("X-Blob-Size", str(repo.layers[digest]))])
        if uploads and method == "POST" and not uploads.group("session"):
            return start_upload(uploads.group("name"), query, start_response)
        if uploads and method == "PUT" and uploads.group("session"):
            return finish_upload(uploads.group("name"), uploads.group("session"), query, environ, start_response)
        if uploads and method == "DELETE" and uploads.group("session"):
            return cancel_upload(uploads.group("name"), uploads.group("session"), start_response)
    return error(start_response, "404 Not Found", "UNSUPPORTED", f"{method} {path} is not emulated")


def start_upload(name, query, start_response):
    """POST /v2/<name>/blobs/uploads/[?mount=<digest>&from=<source>]: 201 when mounted (BLOB_MOUNTING
    enabled, the source's committed manifests name the blob, both repositories encrypted alike),
    else 202 and an upload session, as a registry does when it cannot mount. A fault armed for
    operation RegistryBlobMount (any kind) declines the mount with a 202: what ECR answers where the
    open questions (a blob only an untagged manifest names) come out against mounting."""
    target = repository(name)
    mount, source_name = query.get("mount", [None])[0], query.get("from", [None])[0]
    count(name, "RegistryBlobMount" if mount else "RegistryBlobUpload")
    if target is None:
        return error(start_response, "404 Not Found", "NAME_UNKNOWN", f"repository {name} not found")
    if mount:
        source = repository(source_name or "")
        declined = STATE.take_fault("RegistryBlobMount", name, None)
        if (not declined and source is not None and STATE.account_settings.get("BLOB_MOUNTING") == "ENABLED"
                and source.encryption_configuration == target.encryption_configuration
                and mount in committed(source)):
            target.layers[mount] = source.layers.get(mount, 0)
            if (source.name, mount) in STATE.blob_bytes:
                STATE.blob_bytes[(name, mount)] = STATE.blob_bytes[(source.name, mount)]
            STATE.mounts[name][mount] += 1
            return respond(start_response, "201 Created", b"", "text/plain",
                           headers=[("Location", f"/v2/{name}/blobs/{mount}"), ("Docker-Content-Digest", mount)])
    session = str(uuid.uuid4())
    STATE.uploads[session] = name
    return respond(start_response, "202 Accepted", b"", "text/plain",
                   headers=[("Location", f"/v2/{name}/blobs/uploads/{session}"), ("Docker-Upload-UUID", session), ("Range", "0-0")])


def count(name, operation):
    """A registry API call on the repository, and on ecr-retag's own count when its User-Agent
    (`ecr-retag/<version>`) says it made it."""
    STATE.calls[name][operation] += 1
    if STATE.caller.function:
        STATE.function_calls[name][operation] += 1


def cancel_upload(name, session, start_response):
    """DELETE /v2/<name>/blobs/uploads/<session>: 204 and the session closed, as the distribution
    spec says (a registry keeps an open session until it is used, cancelled or expires); 404 for
    one it does not know."""
    count(name, "RegistryBlobUploadCancel")
    if STATE.uploads.get(session) != name:
        return error(start_response, "404 Not Found", "BLOB_UPLOAD_UNKNOWN", f"upload {session} not found")
    del STATE.uploads[session]
    return respond(start_response, "204 No Content", b"", "text/plain")


def open_uploads(name):
    """Upload sessions of the repository neither used nor cancelled."""
    return sum(1 for repo in STATE.uploads.values() if repo == name)


def finish_upload(name, session, query, environ, start_response):
    """PUT /v2/<name>/blobs/uploads/<session>?digest=<d> with the whole blob: 201 when the bytes hash to d."""
    digest = query.get("digest", [""])[0]
    if STATE.uploads.get(session) != name:
        return error(start_response, "404 Not Found", "BLOB_UPLOAD_UNKNOWN", f"upload {session} not found")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    if not DIGEST.match(digest) or "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        return error(start_response, "400 Bad Request", "DIGEST_INVALID", f"the blob does not hash to {digest}")
    del STATE.uploads[session]
    repository(name).layers[digest] = len(body)
    STATE.blob_bytes[(name, digest)] = body
    return respond(start_response, "201 Created", b"", "text/plain",
                   headers=[("Location", f"/v2/{name}/blobs/{digest}"), ("Docker-Content-Digest", digest)])

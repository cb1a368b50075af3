"""The /_strict/ test hooks (not ECR): counts, faults, quotas, limits, reset.
strict_ecr.py's docstring says what each takes and answers."""

import json
from collections import Counter
from urllib.parse import parse_qs

from .blobs import blob_bytes, open_uploads
from .errors import respond
from .signing import set_scan, set_signing
from .state import STATE


def serve(path, method, environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/_strict/calls":
        repo = query.get("repository", [""])[0]
        with STATE.lock:
            body = dict(STATE.calls.get(repo, Counter()), writes=dict(STATE.writes.get(repo, Counter())),
                        deletes=dict(STATE.deletes.get(repo, Counter())),
                        throttled=dict(STATE.throttled.get(repo, Counter())),
                        redundant=dict(STATE.redundant.get(repo, Counter())),
                        restores=dict(STATE.restores.get(repo, Counter())),
                        mounts=dict(STATE.mounts.get(repo, Counter())),
                        uploads_open=open_uploads(repo))
        return respond(start_response, "200 OK", body)
    if path == "/_strict/function-calls":
        repo = query.get("repository", [None])[0]
        with STATE.lock:
            if repo is not None:
                return respond(start_response, "200 OK", dict(STATE.function_calls.get(repo, Counter())))
            return respond(start_response, "200 OK", dict(sum(STATE.function_calls.values(), Counter())))
    if method == "POST" and path in SETTERS:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length))
        with STATE.lock:
            SETTERS[path](body)
        return respond(start_response, "200 OK", {})
    if path.startswith("/_strict/blob-bytes/") and method == "GET":
        data = blob_bytes(path)
        if data is None:
            return respond(start_response, "404 Not Found", b"NoSuchKey", "text/plain")
        return respond(start_response, "200 OK", data, "application/octet-stream")
    if path == "/_strict/reset" and method == "POST":
        STATE.forget_all()
        return respond(start_response, "200 OK", {})
    return respond(start_response, "404 Not Found", {})


def set_limit(body):
    STATE.tag_limits[body["repository"]] = int(body["tags_per_image"])


def set_pages(body):
    """{"repository": NAME, "size": N}: that repository's DescribeImages pages; {"size": N} alone:
    DescribeRepositories' pages."""
    if "repository" in body:
        STATE.page_sizes[body["repository"]] = int(body["size"])
    else:
        STATE.repository_page_size = int(body["size"])


# Looked up at each call: a reset replaces the lists.
SETTERS = {
    "/_strict/faults": lambda body: STATE.faults.append(body),
    "/_strict/quota": lambda body: STATE.quotas.append(body),
    "/_strict/limits": set_limit,
    "/_strict/scan": set_scan,
    "/_strict/pages": set_pages,
    "/_strict/signing": set_signing,
    "/_strict/inspector": lambda body: setattr(STATE, "rescan_duration", body["rescanDuration"]),
}

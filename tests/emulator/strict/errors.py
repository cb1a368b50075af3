"""ECR's errors that moto lacks, and the raw answers the gateway sends itself."""

import json

from moto.core.exceptions import JsonRESTError


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


def respond(start_response, status, body, content_type="application/json", headers=()):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))), *headers])
    return [data]


def aws_error(start_response, status, code, message):
    return respond(start_response, status, {"__type": code, "message": message},
                   "application/x-amz-json-1.1", [("x-amzn-ErrorType", code)])

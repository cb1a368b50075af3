"""The WSGI front of moto's server: counts ECR calls, injects faults and
quotas, limits ecr-retag's own calls to its IAM policy's operations, and hands
/_strict/ to the hooks."""

import io
import json
import socket
import time

from . import blobs, hooks
from .errors import aws_error, respond
from .state import HANG_SECONDS, STATE

ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921."
KMS_TARGET = "TrentService."
# ecr-retag's User-Agent names it so.
FUNCTION_MARKER = "app/ecr-retag"


class Gateway:
    def __init__(self, app, function_ops=None, latency=0.0):
        self.app = app
        self.function_ops = function_ops
        self.latency = latency

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_strict/"):
            return hooks.serve(path, environ.get("REQUEST_METHOD"), environ, start_response)
        if path == "/v2" or path.startswith("/v2/"):
            return blobs.serve(path, environ.get("REQUEST_METHOD"), environ, start_response)
        if path == "/configuration/get" and environ.get("REQUEST_METHOD") == "POST":
            return inspector_configuration(start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(KMS_TARGET):
            return self.kms(target.split(".", 1)[1], environ, start_response)
        if not target.startswith(ECR_TARGET):
            return self.app(environ, start_response)
        operation = target.split(".", 1)[1]
        request = read_request(environ)
        repo = (request.get("repositoryName") or (request.get("repositoryNames") or [""])[0]
                or request.get("resourceArn", "").partition(":repository/")[2])
        from_function = FUNCTION_MARKER in environ.get("HTTP_USER_AGENT", "") + environ.get("HTTP_X_AMZ_USER_AGENT", "")
        with STATE.lock:
            STATE.calls[repo][operation] += 1
            if from_function:
                STATE.function_calls[repo][operation] += 1
            taken = STATE.take_fault(operation, repo, request.get("imageTag"))
            fault = taken["kind"] if taken else None
            if fault is None and STATE.over_quota(operation, repo, time.monotonic()):
                fault = "throttle"
                STATE.throttled[repo][operation] += 1
        if self.latency:
            time.sleep(self.latency)
        if from_function and self.function_ops is not None and operation not in self.function_ops:
            return aws_error(start_response, "400 Bad Request", "AccessDeniedException",
                             f"ecr-retag is not allowed to call {operation}")
        STATE.caller.function = from_function
        return self.answer(fault, taken, environ, start_response)

    def kms(self, operation, environ, start_response):
        """A KMS call: counted under "(kms)", and held to the function's operations (as `kms:Sign`)."""
        from_function = FUNCTION_MARKER in environ.get("HTTP_USER_AGENT", "") + environ.get("HTTP_X_AMZ_USER_AGENT", "")
        with STATE.lock:
            STATE.calls["(kms)"][operation] += 1
            if from_function:
                STATE.function_calls["(kms)"][operation] += 1
        if self.latency:
            time.sleep(self.latency)
        if from_function and self.function_ops is not None and "kms:" + operation not in self.function_ops:
            return aws_error(start_response, "400 Bad Request", "AccessDeniedException", f"ecr-retag is not allowed to call kms:{operation}")
        return self.app(environ, start_response)

    def answer(self, fault, taken, environ, start_response):
        """The injected failure, or (none, or "late") the call carried out."""
        if fault == "throttle":
            return aws_error(start_response, "400 Bad Request", "ThrottlingException", "Rate exceeded")
        if fault == "500":
            return aws_error(start_response, "500 Internal Server Error", "ServerException", "injected")
        if fault == "503":
            return respond(start_response, "503 Service Unavailable", b"Service Unavailable", "text/plain")
        if fault == "reset":
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            return respond(start_response, "500 Internal Server Error", b"", "text/plain")
        if fault == "hang":
            time.sleep(HANG_SECONDS)
            return aws_error(start_response, "500 Internal Server Error", "ServerException", "hung")
        if fault == "late":
            time.sleep(float(taken.get("seconds", HANG_SECONDS)))
        return self.app(environ, start_response)


def read_request(environ):
    """The JSON body (put back for moto to read again); {} if it is none."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {}


def inspector_configuration(start_response):
    """Amazon Inspector's GetConfiguration (REST-JSON, POST /configuration/get), which moto does not
    serve: the ECR rescan window as Inspector answers it (rescanDuration DAYS_3 … DAYS_180 or
    LIFETIME, set with /_strict/inspector; LIFETIME until then), counted under "(inspector)"."""
    with STATE.lock:
        STATE.calls["(inspector)"]["GetConfiguration"] += 1
        duration = STATE.rescan_duration
    state = {"rescanDuration": duration, "pullDateRescanDuration": "DAYS_180", "pullDateRescanMode": "LAST_PULL_DATE",
             "status": "SUCCESS", "updatedAt": 1780000000}
    return respond(start_response, "200 OK", {"ecrConfiguration": {"rescanDurationState": state}})

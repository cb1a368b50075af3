"""Runs the release bootstrap the way Lambda runs it, on this machine, and invokes it.

  local_lambda.py --binary BOOTSTRAP [--rules FILE] [--env KEY=VALUE]... [--format F] EVENT_FILE...

Starts the bootstrap against a Lambda Runtime API stand-in (RuntimeApi, below),
hands it each event file in turn, as Lambda would (a 30-second function
timeout), and prints each answer: `json` (the default) prints it as the
function returned it, `summary` one line per tag, `jsonl` one line
{"file": …, "answer": …} per event for scripts. An error answer is Lambda's
{"errorType": …, "errorMessage": …}. If the function cannot start (an invalid
rule set, say), its own INIT error is printed and the exit code is 2, within
seconds. The exit code is 1 if any answer was an error.

The function gets AWS_ENDPOINT_URL, AWS_REGION and the credentials from this
process's environment (scripts/invoke sets them to the local ECR's).
"""

import argparse
import http.server
import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RuntimeApi:
    """Lambda Runtime API stand-in: /next waits for an invocation; the first /next ends INIT."""

    def __init__(self):
        self.events = queue.Queue()
        self.pending = {}
        self.first_next = None
        self.init_error = None
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Headers and body are written separately; without TCP_NODELAY the body
                # waits for the client's delayed ACK (40 ms on Linux) and the harness,
                # not the function, would dominate the latency.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"{}", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404)
                if api.first_next is None:
                    api.first_next = time.perf_counter()
                request_id, body = api.events.get()
                deadline = int((time.time() + 30) * 1000)
                self.reply(200, body.encode(), [
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                    ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:ecr-retag"),
                    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0"),
                ])

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = self.path.split("/")
                if self.path == "/2018-06-01/runtime/init/error":
                    api.init_error = json.loads(body or b"null")
                elif len(parts) >= 6 and parts[3] == "invocation":
                    slot = api.pending.get(parts[4])
                    if slot is not None:
                        slot["answer"] = (parts[5], json.loads(body or b"null"))
                        slot["done"].set()
                self.reply(202)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A function killed between runs drops its connection: not worth a traceback.
        self.server.handle_error = lambda request, address: None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, event, alive=lambda: True):
        """Hands out `event` (JSON text) and waits for the answer: (kind, body), kind "response" or
        "error"; and the seconds it took. `alive` says whether the function still runs."""
        request_id = str(uuid.uuid4())
        slot = {"done": threading.Event(), "answer": None}
        self.pending[request_id] = slot
        started = time.perf_counter()
        self.events.put((request_id, event))
        deadline = started + 60
        while not slot["done"].wait(0.1):
            if not alive() or time.perf_counter() > deadline:
                raise RuntimeError("the function exited without answering" if not alive() else "no answer within 60 s")
        return slot["answer"], time.perf_counter() - started

    def close(self):
        self.server.shutdown()


class Function:
    """The bootstrap as a child process of a RuntimeApi, its output kept in a file."""

    def __init__(self, binary, env):
        self.api = RuntimeApi()
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [binary], stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(env, AWS_LAMBDA_RUNTIME_API=self.api.address, AWS_LAMBDA_FUNCTION_NAME="ecr-retag",
                     AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_FUNCTION_VERSION="$LATEST"))

    def wait_for_init(self, seconds=30):
        """None once the function asks for its first event; its INIT error (text) if it stops first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.api.first_next is not None:
                return None
            if self.process.poll() is not None:
                return self.output() or f"the function exited with code {self.process.returncode}"
            time.sleep(0.02)
        return "the function did not ask for an event within 30 s"

    def invoke(self, text):
        return self.api.invoke(text, alive=lambda: self.process.poll() is None)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.api.close()


def short(text):
    """Digests shortened the same way everywhere: sha256: and the first 12 hex digits."""
    return re.sub(r"sha256:([0-9a-f]{12})[0-9a-f]{52}", r"sha256:\1", text)


def readable(value, indent=""):
    """JSON as the function returned it, laid out for reading: what fits in 100 columns on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(indent) + len(flat) <= 100 or not isinstance(value, (dict, list)) or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {readable(v, inner).lstrip()}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + readable(v, inner) for v in value) + f"\n{indent}]"


def summary(kind, answer):
    """One line per tag (or per repository of a sweep, or failed message of a batch)."""
    if kind == "error":
        return f"  error {answer.get('errorType')}: {short(answer.get('errorMessage', ''))}"
    if "batchItemFailures" in answer:
        failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
        return "  batch answered; failed messages: " + (", ".join(failed) if failed else "none")
    lines = [f"  status: {answer['status']}" + (f" ({short(answer['reason'])})" if answer.get("reason") else "")]
    for repo in answer.get("repositories", []):  # a reconcile sweep's answer
        written = f"{repo['would_write']} tags would be written" if answer.get("dry_run") else f"{repo['tags_written']} tags written"
        lines.append(f"    {repo['repository']}: {repo['images_seen']} images, {written}, "
                     f"{repo['already_correct']} already correct, {repo['conflicts']} conflicts, {repo['failed']} failed")
        for c in repo["changes"]:
            lines.append(f"      {c['tag']:<22} {c['outcome']:<12} on {short(c['digest'])}")
    for t in answer.get("tags", []):
        detail = f"  {short(t['detail'])}" if t.get("detail") else ""
        # A promotion's tag is shown where it lands: prod/api:stable.
        where = f"{t['repository']}:" if t.get("repository") else ""
        lines.append(f"    {where + t['tag']:<24} {t['outcome']:<16} rules: {', '.join(t['rules'])}{detail}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, help="the bootstrap (the release build of ecr-retag)")
    parser.add_argument("--rules", default=os.path.join(ROOT, "rules.json"), help="the rule file (RETAG_RULES_FILE)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="more environment for the function")
    parser.add_argument("--format", choices=["json", "summary", "jsonl"], default="json")
    parser.add_argument("--log-lines", type=int, default=0, help="print the function's last N log lines at the end")
    parser.add_argument("events", nargs="+", metavar="EVENT_FILE")
    args = parser.parse_args()

    payloads = []
    for path in args.events:
        try:
            with open(path, encoding="utf-8") as f:
                payloads.append((path, f.read()))
        except OSError as e:
            sys.exit(f"cannot read {path}: {e.strerror}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAG_")}
    env["RETAG_RULES_FILE"] = os.path.abspath(args.rules)
    for pair in args.env:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--env {pair!r}: expected KEY=VALUE")
        env[key] = value

    function = Function(args.binary, env)
    try:
        problem = function.wait_for_init()
        if problem is not None:
            print(f"The function did not start (INIT failed):\n{problem.rstrip()}", file=sys.stderr)
            return 2
        failed = False
        for path, text in payloads:
            try:
                (kind, answer), _ = function.invoke(text)
            except RuntimeError as e:
                print(f"{path}: {e}\n{function.output().rstrip()}", file=sys.stderr)
                return 2
            failed |= kind == "error"
            if args.format == "jsonl":
                print(json.dumps({"file": path, "answer": answer}), flush=True)
            elif args.format == "summary":
                print(f"==> {path}\n{summary(kind, answer)}", flush=True)
            else:
                print(f"==> {path}\n{readable(answer)}", flush=True)
        if args.log_lines:
            time.sleep(0.2)  # the last lines may trail the answer
            lines = function.output().splitlines()[-args.log_lines:]
            print("==> The function's last log lines")
            for line in lines:
                print("  " + short(line)[:300])
        return 1 if failed else 0
    finally:
        function.stop()


if __name__ == "__main__":
    sys.exit(main())

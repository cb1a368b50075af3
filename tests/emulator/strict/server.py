"""The command line and the HTTP server (see strict_ecr.py)."""

import argparse
import os
import socket
import sys
import threading

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from . import patches
from .gateway import Gateway


class NoDelayHandler(MotoRequestHandler):
    """Answers go out at once: without TCP_NODELAY, the response body waits for the
    client's delayed ACK of the headers (40 ms on Linux), on every call."""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--function-ops", help="comma-separated operations ecr-retag may call")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every ECR and KMS call")
    args = parser.parse_args()

    patches.install()
    function_ops = set(args.function_ops.split(",")) if args.function_ops else None
    app = Gateway(DomainDispatcherApplication(create_backend_app), function_ops, args.latency_ms / 1000)
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

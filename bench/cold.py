"""bench/cold: the first event after a cold start, over TLS, at a small function's CPU share.

Both implementations (the release bootstrap, and bench/peer/handler.py under
awslambdaric) run through the Runtime API stand-in of scripts/local_lambda.py
against an ECR stub served over TLS with a local CA (BatchGetImage and PutImage
only, byte for byte, a fixed latency per call, every call answered in parallel,
TCP connections and TLS handshakes counted). Each process is started inside a
Linux cgroup (v1, `cpu` controller) and limited, once its INIT is done (AWS boosts
INIT), to the CPU share of a Lambda function of the given memory size: a full
vCPU at 1,769 MB. Prints one table and writes it, with the machine and the date,
to BENCHMARKS.md. Not a test: it asserts nothing.
"""

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench  # noqa: E402  (its Runtime API stand-in, events, tag templates, machine(), publish())

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
REGION = "eu-west-1"
MEDIA = "application/vnd.docker.distribution.manifest.v2+json"
CGROUP_ROOT = "/sys/fs/cgroup/cpu"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PERIOD_US = 100_000
# Lambda allocates CPU in proportion to memory: one full vCPU at 1,769 MB.
FULL_VCPU_MB = 1769
# arm64 price per GB-second (us-east-1, 2026), for the cost column.
PRICE_GB_S = 0.0000133334


class EcrStub:
    """BatchGetImage and PutImage over TLS, each answered after `latency` seconds, in parallel
    (asyncio: no lock, no GIL-bound work beyond parsing). Counts connections and handshakes."""

    def __init__(self, certfile, keyfile, latency):
        self.latency = latency
        self.images = {}       # digest -> (manifest, media type)
        self.tags = {}         # (repository, tag) -> digest
        self.lock = threading.Lock()
        self.connections = 0
        self.handshakes = 0
        self.resumed = 0
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certfile, keyfile)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait()

    def _serve(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, ssl=self.context, backlog=256))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def counts(self):
        with self.lock:
            return self.connections, self.handshakes, self.resumed

    def seed(self, repository, body):
        digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
        with self.lock:
            self.images[digest] = (body, MEDIA)
        return digest

    async def _connection(self, reader, writer):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = writer.get_extra_info("ssl_object")
        with self.lock:
            self.connections += 1
            self.handshakes += 1
            self.resumed += 1 if tls is not None and tls.session_reused else 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                target = headers.get("x-amz-target", "").rsplit(".", 1)[-1]
                await asyncio.sleep(self.latency)
                status, answer = self._answer(target, json.loads(body or b"{}"))
                data = json.dumps(answer).encode()
                # Headers and body in one write: no delayed-ACK stall on a kept-alive connection.
                writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\n"
                             f"Content-Length: {len(data)}\r\nx-amzn-RequestId: {uuid.uuid4()}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _answer(self, target, request):
        repository = request.get("repositoryName", "")
        with self.lock:
            if target == "BatchGetImage":
                images, failures = [], []
                for image_id in request.get("imageIds", []):
                    digest = image_id.get("imageDigest") or self.tags.get((repository, image_id.get("imageTag")))
                    if digest in self.images:
                        manifest, media = self.images[digest]
                        images.append({"registryId": "123456789012", "repositoryName": repository,
                                       "imageId": dict(image_id, imageDigest=digest),
                                       "imageManifest": manifest, "imageManifestMediaType": media})
                    else:
                        failures.append({"imageId": image_id, "failureCode": "ImageNotFound",
                                         "failureReason": "Requested image not found"})
                return "200 OK", {"images": images, "failures": failures}
            if target == "PutImage":
                digest = "sha256:" + hashlib.sha256(request["imageManifest"].encode()).hexdigest()
                key = (repository, request.get("imageTag"))
                if self.tags.get(key) == digest:
                    return "400 Bad Request", {"__type": "ImageAlreadyExistsException",
                                               "message": "Image with digest and tag already exists"}
                self.tags[key] = digest
                self.images.setdefault(digest, (request["imageManifest"], request.get("imageManifestMediaType")))
                return "200 OK", {"image": {"registryId": "123456789012", "repositoryName": repository,
                                            "imageId": {"imageDigest": digest, "imageTag": request.get("imageTag")},
                                            "imageManifest": request["imageManifest"],
                                            "imageManifestMediaType": request.get("imageManifestMediaType")}}
        return "400 Bad Request", {"__type": "UnknownOperationException", "message": target}


def local_ca(directory):
    """A CA and a server certificate for localhost (RSA 2048, as AWS's endpoints present)."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=ecr-retag bench CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
        "-days", "2", "-extfile", "san.ext")
    # Trusted as Lambda's own roots would be: the system bundle (what rustls-native-certs parses in
    # Lambda, about 150 roots) with the local CA appended.
    bundle = os.path.join(directory, "bundle.pem")
    with open(bundle, "w") as out:
        for path in (SYSTEM_BUNDLE, os.path.join(directory, "ca.pem")):
            if os.path.exists(path):
                with open(path) as f:
                    out.write(f.read().rstrip("\n") + "\n")
    return bundle, os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")


class Cgroup:
    """One cgroup (v1 `cpu`) per process: started inside it, its quota set after INIT."""

    def __init__(self, name):
        self.path = os.path.join(CGROUP_ROOT, name)
        os.makedirs(self.path, exist_ok=True)
        self.limit(None)

    def limit(self, share):
        """`share` of one CPU (None: unlimited)."""
        quota = -1 if share is None else max(1000, int(PERIOD_US * share))
        with open(os.path.join(self.path, "cpu.cfs_period_us"), "w") as f:
            f.write(str(PERIOD_US))
        with open(os.path.join(self.path, "cpu.cfs_quota_us"), "w") as f:
            f.write(str(quota))

    def wrap(self, command):
        # Joining the cgroup before exec: moving a running process costs an RCU wait that would land in INIT.
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path, *command]

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def share_of(memory_mb):
    return min(1.0, memory_mb / FULL_VCPU_MB)


def cpu_ms(pid):
    """CPU time of every thread of the process so far, from the scheduler (ns, not clock ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that ended meanwhile
    return total / 1e6


class Run:
    """One implementation's process, from its spawn to its kill."""

    def __init__(self, impl, stub, ca, memory_mb, n_tags, limit_init):
        self.api = bench.local_lambda.RuntimeApi()
        env = {
            "PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_ENDPOINT_URL": f"https://localhost:{stub.port}",
            # The Rust SDK reads its roots through rustls-native-certs (SSL_CERT_FILE, SSL_CERT_DIR),
            # boto3 through AWS_CA_BUNDLE; both set here, and nothing inherited.
            "SSL_CERT_FILE": ca, "AWS_CA_BUNDLE": ca,
        }
        env.update(impl["env"](n_tags))
        self.cgroup = Cgroup(f"ecr-retag-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.share = share_of(memory_mb)
        if limit_init:
            self.cgroup.limit(self.share)
        # What it says if it cannot start (a file, not a pipe nobody reads while it runs).
        self.errors = tempfile.TemporaryFile()
        spawned = time.perf_counter()
        self.process = subprocess.Popen(self.cgroup.wrap(impl["command"]), cwd=impl["cwd"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=self.errors)
        while self.api.first_next is None:
            if self.process.poll() is not None:
                self.errors.seek(0)
                said = self.errors.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"{impl['name']} exited during INIT ({self.process.returncode}): {said}")
            time.sleep(0.0002)
        self.init = self.api.first_next - spawned
        self.cgroup.limit(self.share)

    def invoke(self, stub, event, n_tags):
        before = stub.counts()
        cpu_before = cpu_ms(self.process.pid)
        answer, seconds = self.api.invoke(json.dumps(event), alive=lambda: self.process.poll() is None)
        if answer[0] != "response" or len(answer[1].get("tags", [])) != n_tags:
            raise RuntimeError(f"unexpected answer: {answer}")
        after = stub.counts()
        return {"seconds": seconds, "cpu_ms": cpu_ms(self.process.pid) - cpu_before,
                "connections": after[0] - before[0], "handshakes": after[1] - before[1], "resumed": after[2] - before[2]}

    def rss_kib(self):
        return bench.peak_rss_kib(self.process)

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.api.close()
        self.cgroup.remove()


class Images:
    """A fresh image for every event: every tag is a real PutImage."""

    def __init__(self, stub):
        self.stub, self.n = stub, 0
        with open(os.path.join(ROOT, "tests/fixtures/manifests/docker-v2.json")) as f:
            self.base = f.read()

    def next(self, repository):
        self.n += 1
        body = self.base.replace(bench.CONFIG_DIGEST, bench.CONFIG_DIGEST[:-8] + f"{self.n:08x}")
        return bench.event(repository, f"v1.0.{self.n}", self.stub.seed(repository, body))


def cold(impl, stub, ca, images, memory_mb, n_tags, runs):
    """`runs` cold starts: INIT (boosted), the first event, the next one; INIT limited separately."""
    out = {"init": [], "first": [], "warm": [], "rss_kib": 0, "init_limited": []}
    for _ in range(runs):
        run = Run(impl, stub, ca, memory_mb, n_tags, limit_init=False)
        try:
            first = run.invoke(stub, images.next(f"cold-{impl['name']}"), n_tags)
            first["total"] = run.init + first["seconds"]
            out["init"].append(run.init)
            out["first"].append(first)
            out["warm"].append(run.invoke(stub, images.next(f"cold-{impl['name']}"), n_tags))
            out["rss_kib"] = max(out["rss_kib"], run.rss_kib())
        finally:
            run.stop()
        run = Run(impl, stub, ca, memory_mb, n_tags, limit_init=True)
        out["init_limited"].append(run.init)
        run.stop()
    return out


def scaling(impl, stub, ca, images, runs):
    """Warm events at full CPU on the parallel stub: 16 tags against 1."""
    medians = {}
    for n_tags in (1, 16):
        run = Run(impl, stub, ca, FULL_VCPU_MB, n_tags, limit_init=False)
        try:
            run.invoke(stub, images.next("scale"), n_tags)
            medians[n_tags] = statistics.median(run.invoke(stub, images.next("scale"), n_tags)["seconds"] for _ in range(runs))
        finally:
            run.stop()
    return medians


def med(values):
    return statistics.median(values)


def ms(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def table(results, scale, memories):
    names = list(results)
    header = ["measure"] + [f"{n}, {m} MB" for m in memories for n in names]
    rows = []
    def row(label, cell):
        rows.append([label] + [cell(results[n][m]) for m in memories for n in names])
    for n_tags in (1, 16):
        key = f"{n_tags}"
        row(f"INIT (boosted), {n_tags}-tag rules", lambda r: ms(med(r[key]["init"])))
        row(f"INIT at the CPU share, {n_tags}-tag rules", lambda r: ms(med(r[key]["init_limited"])))
        row(f"first event after a cold start (INIT + invocation), {n_tags} tag{'s' * (n_tags > 1)}",
            lambda r: ms(med(f["total"] for f in r[key]["first"])))
        row(f"  of which the invocation, CPU time", lambda r: f"{ms(med(f['seconds'] for f in r[key]['first']))}, "
                                                              f"{med(f['cpu_ms'] for f in r[key]['first']):.1f} ms CPU")
        row(f"next (warm) event, {n_tags} tag{'s' * (n_tags > 1)}, CPU time",
            lambda r: f"{ms(med(w['seconds'] for w in r[key]['warm']))}, {med(w['cpu_ms'] for w in r[key]['warm']):.1f} ms CPU")
        row(f"TLS handshakes (resumed) / TCP connections, first event, {n_tags} tag{'s' * (n_tags > 1)}",
            lambda r: f"{med(f['handshakes'] for f in r[key]['first']):.0f} ({med(f['resumed'] for f in r[key]['first']):.0f}) / "
                      f"{med(f['connections'] for f in r[key]['first']):.0f}")
        row(f"TLS handshakes / TCP connections, warm event, {n_tags} tag{'s' * (n_tags > 1)}",
            lambda r: f"{med(w['handshakes'] for w in r[key]['warm']):.0f} / {med(w['connections'] for w in r[key]['warm']):.0f}")
    row("cost of the first 16-tag event (INIT billed), GB-s", lambda r: f"{r['16']['memory_gb'] * med(f['total'] for f in r['16']['first']):.4f}")
    row("cost of a warm 16-tag event, GB-s", lambda r: f"{r['16']['memory_gb'] * med(w['seconds'] for w in r['16']['warm']):.4f}")
    row("peak RSS", lambda r: f"{max(r['1']['rss_kib'], r['16']['rss_kib']) / 1024:.1f} MB")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    lines.append("| warm, full CPU, parallel stub | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for n_tags in (1, 16):
        lines.append(f"| {n_tags} tag{'s' * (n_tags > 1)} | " + " | ".join(ms(scale[n][n_tags]) for n in names) + " |")
    lines.append("| 16 tags ÷ 1 tag | " + " | ".join(f"{scale[n][16] / scale[n][1]:.2f}×" for n in names) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold starts per configuration")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--memory", default="128,256,512", help="memory sizes (MB) whose CPU share is measured")
    parser.add_argument("--only", choices=["ecr-retag", "python"], help="measure one implementation")
    parser.add_argument("--write", default=os.path.join(ROOT, "BENCHMARKS.md"), help="'' to only print")
    parser.add_argument("--block", default="cold")
    parser.add_argument("--binary", default=os.path.join(TARGET, "release/bootstrap"),
                        help="ecr-retag's function to measure (another build, for a before/after comparison)")
    args = parser.parse_args()
    if not os.access(CGROUP_ROOT, os.W_OK):
        sys.exit(f"bench/cold needs a writable cgroup v1 cpu controller at {CGROUP_ROOT} (run as root)")

    memories = [int(m) for m in args.memory.split(",")]
    impls = [
        {"name": "ecr-retag", "command": [args.binary], "cwd": ROOT,
         "env": lambda n: {"RETAG_RULES": json.dumps({"rules": [{"name": "bench", "semver": True, "tags": bench.templates(n)}]})}},
        {"name": "python", "command": [os.path.join(ROOT, ".venv-bench/bin/python"), "-m", "awslambdaric", "handler.handler"],
         "cwd": os.path.join(ROOT, "bench/peer"), "env": lambda n: {"RETAG_TEMPLATES": json.dumps(bench.templates(n))}},
    ]
    impls = [i for i in impls if args.only in (None, i["name"])]
    directory = tempfile.mkdtemp(prefix="ecr-retag-cold-")
    try:
        ca, cert, key = local_ca(directory)
        stub = EcrStub(cert, key, args.latency_ms / 1000)
        images = Images(stub)
        results, scale = {}, {}
        for impl in impls:
            results[impl["name"]] = {}
            for memory in memories:
                print(f"measuring {impl['name']} at {memory} MB ...", file=sys.stderr)
                results[impl["name"]][memory] = {
                    str(n): dict(cold(impl, stub, ca, images, memory, n, args.runs), memory_gb=memory / 1024)
                    for n in (1, 16)}
            scale[impl["name"]] = scaling(impl, stub, ca, images, 7)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    result = table(results, scale, memories)
    header = bench.header("bench/cold",
                          f"TLS (RSA 2048, a local CA) to a parallel ECR stub answering every call "
                          f"after {args.latency_ms:g} ms; medians of {args.runs} cold starts per cell, a fresh image per event. "
                          f"CPU limited to the memory size's share of one vCPU (full at {FULL_VCPU_MB} MB) from the end of INIT; "
                          f"\"INIT at the CPU share\" is limited from the start. GB-s: memory × (INIT + invocation), "
                          f"at ${PRICE_GB_S * 1e6:.2f} per million GB-s (arm64).")
    bench.publish(args, header, result)


if __name__ == "__main__":
    main()

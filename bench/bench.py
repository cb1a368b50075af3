"""bench/run: ecr-retag against the usual Python + boto3 retagger, side by side.

Both run the way Lambda runs them, driven through the same Lambda Runtime API
stand-in (below) against the same local ECR emulator: the release bootstrap,
and bench/peer/handler.py under the real Python runtime interface client
(awslambdaric). INIT is process start to the first GET /next; an invocation is
the event handed out to the answer posted. Prints one table and writes it,
with the machine and the date, to BENCHMARKS.md.
"""

import argparse
import datetime
import http.server
import io
import json
import os
import platform
import queue
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zipfile

import boto3

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import local_lambda  # noqa: E402  (the Runtime API stand-in the scripts use)
import init as init_bench  # noqa: E402  (bench/init.py: one INIT, process start to the first GET /next)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
# bench/init's floor: the smallest lambda_runtime function (bench/init_floor.rs), same profile.
FLOOR = os.path.join(TARGET, "release", "examples", "init-floor")
REGION = "eu-west-1"
MEDIA = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_DIGEST = "sha256:e67d23e7820c49a8051dac2831f38290f5e72f66c8db5079eeb60d82f14894c0"


class RuntimeApi(local_lambda.RuntimeApi):
    """The Runtime API stand-in of scripts/local_lambda.py, handed events as objects."""

    def invoke(self, event):
        return super().invoke(json.dumps(event))


class Emulator:
    def __init__(self, latency_ms):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests/emulator/strict_ecr.py"), "--port", "0",
             "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.endpoint = f"http://127.0.0.1:{self.process.stdout.readline().strip()}"
        self.ecr = boto3.client("ecr", endpoint_url=self.endpoint, region_name=REGION,
                                aws_access_key_id="bench", aws_secret_access_key="bench")

    def calls(self, repository):
        with urllib.request.urlopen(f"{self.endpoint}/_strict/calls?repository={repository}") as r:
            data = json.load(r)
        return data.get("BatchGetImage", 0) + data.get("PutImage", 0)

    def seed(self, repository, count, offset):
        """`count` distinct images tagged v1.0.N; returns (tag, digest) pairs."""
        self.ecr.create_repository(repositoryName=repository)
        with open(os.path.join(ROOT, "tests/fixtures/manifests/docker-v2.json")) as f:
            base = f.read()
        images = []
        for n in range(count):
            body = base.replace(CONFIG_DIGEST, CONFIG_DIGEST[:-8] + f"{offset + n:08x}")
            out = self.ecr.put_image(repositoryName=repository, imageManifest=body,
                                     imageManifestMediaType=MEDIA, imageTag=f"v1.0.{n}")
            images.append((f"v1.0.{n}", out["image"]["imageId"]["imageDigest"]))
        return images

    def close(self):
        self.process.terminate()


def event(repository, tag, digest):
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION, "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": repository, "image-digest": digest,
                   "action-type": "PUSH", "image-tag": tag, "manifest-media-type": MEDIA},
    }


def templates(n):
    return [f"t{i}-{{tag}}" for i in range(n)]


class Implementation:
    def __init__(self, name, command, cwd, env, floor=False):
        """`floor`: measure the smallest lambda_runtime function's INIT alongside this one's."""
        self.name, self.command, self.cwd, self.env, self.floor = name, command, cwd, env, floor

    def start(self, emulator, n_tags):
        api = RuntimeApi()
        env = {
            "PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_ENDPOINT_URL": emulator.endpoint,
        }
        env.update(self.env(n_tags))
        spawned = time.perf_counter()
        process = subprocess.Popen(self.command, cwd=self.cwd, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while api.first_next is None:
            if process.poll() is not None:
                raise RuntimeError(f"{self.name} exited during INIT")
            time.sleep(0.0002)
        return process, api, api.first_next - spawned

    @staticmethod
    def stop(process, api):
        process.kill()
        process.wait()
        api.close()


def peak_rss_kib(process):
    with open(f"/proc/{process.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def summary(samples, scale=1000.0):
    values = sorted(v * scale for v in samples)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1], "n": len(values)}


def measure(impl, emulator, args, offset):
    results = {"init": [], "warm": {}, "calls": {}, "rss_kib": 0, "floor": []}
    for _ in range(args.init_runs):
        process, api, init = impl.start(emulator, 4)
        results["init"].append(init)
        Implementation.stop(process, api)
        if impl.floor:  # alternately, so that the machine's drift touches both alike
            results["floor"].append(init_bench.init_once([FLOOR], {}))
    for n_tags in (1, 4, 16):
        repository = f"bench-{impl.name}-{n_tags}"
        images = emulator.seed(repository, args.warm_runs + 2, offset + n_tags * 1000)
        process, api, _ = impl.start(emulator, n_tags)
        answer, _ = api.invoke(event(repository, *images[0]))  # warm-up: connections, first-call costs
        if answer[0] != "response":
            raise RuntimeError(f"{impl.name}: {answer}")
        latencies = []
        for tag, digest in images[1:-1]:
            answer, seconds = api.invoke(event(repository, tag, digest))
            if answer[0] != "response" or len(answer[1]["tags"]) != n_tags:
                raise RuntimeError(f"{impl.name}: {answer}")
            latencies.append(seconds)
        results["warm"][n_tags] = latencies
        if n_tags == 4:
            tag, digest = images[-1]
            before = emulator.calls(repository)
            api.invoke(event(repository, tag, digest))
            first = emulator.calls(repository)
            api.invoke(event(repository, tag, digest))
            again = emulator.calls(repository)
            api.invoke(event(repository, "latest", digest))
            nomatch = emulator.calls(repository)
            results["calls"] = {"first": first - before, "again": again - first, "nomatch": nomatch - again}
        results["rss_kib"] = max(results["rss_kib"], peak_rss_kib(process))
        Implementation.stop(process, api)
    return results


def package_sizes(skip):
    if skip:
        return None
    subprocess.run(["cargo", "lambda", "build", "--release", "--arm64", "--bin", "bootstrap", "--quiet"], cwd=ROOT, check=True,
                   env=dict(os.environ, PATH=os.path.join(ROOT, ".venv-deploy/bin") + os.pathsep + os.environ["PATH"]))
    bootstrap = os.path.join(TARGET, "lambda/bootstrap/bootstrap")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(bootstrap, "bootstrap")
    return {"unzipped": os.path.getsize(bootstrap), "zipped": len(buffer.getvalue())}


def rule_benchmarks():
    out = subprocess.run(["cargo", "bench", "--quiet", "-p", "ecr-retag-domain", "--bench", "rules"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    found = {}
    for name, low, mid, high in re.findall(
            r"^(\S.*?)\s*\n?\s*time:\s+\[([\d.]+ \S+) ([\d.]+ \S+) ([\d.]+ \S+)\]", out, re.M):
        found[name.strip()] = (low, mid, high)
    return found


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    return f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}"


def ms(s):
    return f"{s['median']:.1f} ms ({s['min']:.1f}–{s['max']:.1f})"


def table(ours, peer, package, rules, args):
    rows = []
    def ratio(a, b):
        return f"{a / b:.2f}" if b else "–"
    oi, pi = summary(ours["init"]), summary(peer["init"])
    rows.append(("INIT (cold start)", ms(oi), ms(pi), ratio(oi["median"], pi["median"]),
                 "≤ 15 ms, ≥ 10× below the peer"))
    if ours.get("floor"):
        fi = summary(ours["floor"])
        rows.append(("INIT added to the floor (the smallest lambda_runtime function, same profile, "
                     f"started alternately: {ms(fi)})", f"{oi['median'] - fi['median']:.1f} ms", "–", "–", "≤ 13 ms"))
    for n in (1, 4, 16):
        o, p = summary(ours["warm"][n]), summary(peer["warm"][n])
        target = "below the peer" + (", ≤ 1.5× the 1-tag latency" if n == 16 else "")
        rows.append((f"warm invocation, {n} tag{'s' if n > 1 else ''}", ms(o), ms(p), ratio(o["median"], p["median"]), target))
    o1, o16 = summary(ours["warm"][1]), summary(ours["warm"][16])
    p1, p16 = summary(peer["warm"][1]), summary(peer["warm"][16])
    rows.append(("16 tags / 1 tag", f"{o16['median'] / o1['median']:.2f}×", f"{p16['median'] / p1['median']:.2f}×", "–", "≤ 1.5×"))
    for key, label, floor in (("first", "first delivery (4 tags)", "1 read + 4 PutImage = 5"),
                              ("again", "re-delivery", "1 read"), ("nomatch", "no rule matches", "0")):
        rows.append((f"AWS calls, {label}", str(ours["calls"][key]), str(peer["calls"][key]),
                     ratio(ours["calls"][key], peer["calls"][key]), f"floor: {floor}"))
    rows.append(("peak RSS", f"{ours['rss_kib'] / 1024:.1f} MB", f"{peer['rss_kib'] / 1024:.1f} MB",
                 ratio(ours["rss_kib"], peer["rss_kib"]), "≤ 20 MB"))
    if package:
        rows.append(("arm64 package, zipped", f"{package['zipped'] / 1e6:.2f} MB", "–", "–", "≤ 4 MB"))
        rows.append(("arm64 package, unzipped", f"{package['unzipped'] / 1e6:.2f} MB", "–", "–", ""))
    for name, (low, mid, high) in rules.items():
        rows.append((f"criterion: {name}", f"{mid} ({low}–{high})", "–", "–",
                     "< 50 µs" if name.startswith("derive") else ""))
    header = ("measure", "ecr-retag, median (min–max)", "Python + boto3 peer", "ratio", "target")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init-runs", type=int, default=15)
    parser.add_argument("--warm-runs", type=int, default=15)
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="added to every emulated ECR call, as a region's network and service time would")
    parser.add_argument("--skip-arm64", action="store_true", help="skip the arm64 package build (3 minutes cold)")
    parser.add_argument("--write", default=os.path.join(ROOT, "BENCHMARKS.md"),
                        help="the file whose generated block is replaced ('' to only print)")
    parser.add_argument("--block", default="main", help="which generated block of that file")
    parser.add_argument("--binary", default=os.path.join(TARGET, "release/bootstrap"),
                        help="the function to measure (another build, for a before/after comparison)")
    parser.add_argument("--only-ours", action="store_true", help="skip the Python peer (its column then repeats ours)")
    args = parser.parse_args()

    bootstrap = args.binary
    rust = Implementation("ecr-retag", [bootstrap], ROOT, lambda n: {
        "RETAG_RULES": json.dumps({"rules": [{"name": "bench", "semver": True, "tags": templates(n)}]})}, floor=True)
    python = Implementation("python", [os.path.join(ROOT, ".venv-bench/bin/python"), "-m", "awslambdaric",
                                       "handler.handler"], os.path.join(ROOT, "bench/peer"),
                            lambda n: {"RETAG_TEMPLATES": json.dumps(templates(n))})
    emulator = Emulator(args.latency_ms)
    try:
        print("measuring ecr-retag ...", file=sys.stderr)
        ours = measure(rust, emulator, args, 0)
        if args.only_ours:
            peer = ours
        else:
            print("measuring the Python peer ...", file=sys.stderr)
            peer = measure(python, emulator, args, 100_000)
    finally:
        emulator.close()
    print("building the arm64 package ..." if not args.skip_arm64 else "", file=sys.stderr)
    package = package_sizes(args.skip_arm64)
    print("running the rule-evaluation benchmark ...", file=sys.stderr)
    rules = rule_benchmarks()

    result = table(ours, peer, package, rules, args)
    above = header("bench/run", f"Emulated ECR latency: {args.latency_ms:g} ms per call. "
                   f"INIT over {args.init_runs} cold starts; warm invocations over {args.warm_runs} events per tag count, "
                   f"each a fresh image, so every tag is a real PutImage.")
    publish(args, above, result)


def header(script, details):
    """The date, the machine and the command line above a table, then `details`."""
    command = f"{script} " + " ".join(sys.argv[1:])
    return f"Measured {datetime.date.today().isoformat()} on {machine()}.\n\nCommand: `{command.strip()}`. {details}\n"


def publish(args, header, result):
    """Prints the figures and, unless `--write ''`, puts them into the block `--block` of that file."""
    print(header)
    print(result)
    if args.write:
        write_benchmarks(args.write, args.block, header, result)


def write_benchmarks(path, block, header, result):
    """Replaces one generated block of BENCHMARKS.md, keeping the hand-written notes."""
    begin, end = f"<!-- bench/run {block}: begin -->", f"<!-- bench/run {block}: end -->"
    text = open(path).read() if os.path.exists(path) else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    before, rest = text.split(begin, 1)
    after = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(f"{before}{begin}\n{header}\n{result}\n{end}{after}")


if __name__ == "__main__":
    main()

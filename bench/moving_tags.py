"""bench/moving-tags: what the if-newer guarantee costs (calls, latency, throughput).

The release bootstrap against the strict emulator (20 ms per ECR call, PutImage
throttled at ECR's default 10 per second for the account), driven through the
Runtime API stand-in of scripts/local_lambda.py, once with "move": "if-newer"
rules and once with the same rules moving always. Prints one table and writes it
into BENCHMARKS.md (block "moving-tags"). Asserts nothing: it prints figures.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the emulator, the Runtime API stand-in, the BENCHMARKS.md writer)

ROOT, TARGET = bench.ROOT, bench.TARGET


def rules(move):
    rule = {"name": "release", "semver": True, "tags": ["stable", "v{major}", "v{major}.{minor}"]}
    if move == "if-newer":
        rule["move"] = "if-newer"
    return json.dumps({"rules": [rule]})


class Instances:
    """`n` release bootstraps, each taking one invocation at a time, as Lambda's instances do."""

    def __init__(self, emulator, move, n):
        impl = bench.Implementation("ecr-retag", [os.path.join(TARGET, "release/bootstrap")], ROOT,
                                    lambda _: {"RETAG_RULES": rules(move)})
        self.running = [impl.start(emulator, 0) for _ in range(n)]
        self.free = list(range(n))
        self.lock = threading.Condition()

    def invoke(self, payload):
        with self.lock:
            while not self.free:
                self.lock.wait()
            i = self.free.pop()
        try:
            return self.running[i][1].invoke(payload)
        finally:
            with self.lock:
                self.free.append(i)
                self.lock.notify()

    def close(self):
        for process, api, _ in self.running:
            bench.Implementation.stop(process, api)


def calls(emulator, repository):
    with urllib.request.urlopen(f"{emulator.endpoint}/_strict/function-calls?repository={repository}") as r:
        return json.load(r)


def totals(emulator, repositories):
    out = {}
    for r in repositories:
        with urllib.request.urlopen(f"{emulator.endpoint}/_strict/calls?repository={r}") as answer:
            data = json.load(answer)
        for op in ("BatchGetImage", "PutImage", "DescribeImages"):
            out[op] = out.get(op, 0) + calls(emulator, r).get(op, 0)
        out["throttled"] = out.get("throttled", 0) + data.get("throttled", {}).get("PutImage", 0)
    return out


def seed(emulator, repository, versions, offset):
    emulator.ecr.create_repository(repositoryName=repository)
    with open(os.path.join(ROOT, "tests/fixtures/manifests/docker-v2.json")) as f:
        base = f.read()
    pushed = []
    for n, v in enumerate(versions):
        body = base.replace(bench.CONFIG_DIGEST, bench.CONFIG_DIGEST[:-8] + f"{offset + n:08x}")
        out = emulator.ecr.put_image(repositoryName=repository, imageManifest=body,
                                     imageManifestMediaType=bench.MEDIA, imageTag=v)
        pushed.append((v, out["image"]["imageId"]["imageDigest"]))
    return pushed


def per_event(emulator, move, runs, offset):
    """One instance, one event at a time: a release moving stable and v1, the same event
    again, and a hotfix below the line."""
    repository = f"mt-single-{move}"
    # The hotfix v1.1.4 comes after v1.1.5 and the later lines: every tag it derives is held higher.
    versions = ["v1.1.5"] + [f"v1.{i + 2}.0" for i in range(runs)] + ["v1.1.4"]
    pushed = seed(emulator, repository, versions, offset)
    instances = Instances(emulator, move, 1)
    try:
        samples = {"release": [], "again": [], "hotfix": []}
        used = {}
        def one(kind, tag, digest):
            before = calls(emulator, repository)
            answer, seconds = instances.invoke(bench.event(repository, tag, digest))
            if answer[0] != "response":
                raise RuntimeError(answer)
            after = calls(emulator, repository)
            samples[kind].append(seconds)
            used[kind] = {op: after.get(op, 0) - before.get(op, 0) for op in ("BatchGetImage", "DescribeImages", "PutImage")}
        instances.invoke(bench.event(repository, *pushed[0]))  # warm-up
        for tag, digest in pushed[1:-1]:
            one("release", tag, digest)
            one("again", tag, digest)
        for _ in range(runs):
            one("hotfix", *pushed[-1])
        return samples, used
    finally:
        instances.close()


def throughput(emulator, move, mode, offset, repositories=10, versions=10):
    """`repositories` × `versions` releases pushed at once (each repository's in random order),
    delivered as the template's defaults deliver them: direct (5 instances, one event each)
    or queue (batches of 10 over 4 instances)."""
    names = [f"mt-{move}-{mode}-{r}" for r in range(repositories)]
    events = []
    for r, name in enumerate(names):
        pushed = seed(emulator, name, [f"v1.{i}.0" for i in range(versions)], offset + r * versions)
        events += [bench.event(name, t, d) for t, d in pushed]
    random.Random(offset).shuffle(events)
    if mode == "direct":
        instances, payloads = Instances(emulator, move, 5), events
    else:
        instances = Instances(emulator, move, 4)
        payloads = [{"Records": [{"messageId": f"m{i + j}", "receiptHandle": "r", "body": json.dumps(e),
                                             "eventSource": "aws:sqs", "awsRegion": bench.REGION}
                                            for j, e in enumerate(events[i:i + 10])]}
                    for i in range(0, len(events), 10)]
    # Failed events come back, as Lambda's retries and SQS's redelivery bring them (at once here).
    redelivered = [0]
    def run(payload):
        for _ in range(10):
            answer, _ = instances.invoke(payload)
            if answer[0] == "response" and not answer[1].get("batchItemFailures"):
                return
            redelivered[0] += 1
            if "Records" in payload:
                failed = {f["itemIdentifier"] for f in answer[1].get("batchItemFailures", [])} if answer[0] == "response" else None
                payload = {"Records": [r for r in payload["Records"] if failed is None or r["messageId"] in failed]}
    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    instances.close()
    used = totals(emulator, names)
    wrong = 0
    for name in names:
        held = {t: d for d in emulator.ecr.describe_images(repositoryName=name)["imageDetails"] for t in d.get("imageTags", [])}
        top = held.get(f"v1.{versions - 1}.0", {}).get("imageDigest")
        wrong += held.get("stable", {}).get("imageDigest") != top
    return {"events": len(events), "seconds": elapsed, "redelivered": redelivered[0], "wrong": wrong, **used}


def ms(samples):
    values = sorted(s * 1000 for s in samples)
    return f"{statistics.median(values):.0f} ms ({values[0]:.0f}–{values[-1]:.0f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    emulator = bench.Emulator(20.0)
    try:
        with urllib.request.urlopen(urllib.request.Request(
                f"{emulator.endpoint}/_strict/quota", method="POST",
                data=json.dumps({"operation": "PutImage", "prefix": "mt-", "per_second": 10}).encode())):
            pass
        results = {}
        for k, move in enumerate(("if-newer", "always")):
            print(f"measuring {move} ...", file=sys.stderr)
            results[move] = {
                "single": per_event(emulator, move, args.runs, 10_000 * (k + 1)),
                "direct": throughput(emulator, move, "direct", 10_000 * (k + 1) + 1000),
                "queue": throughput(emulator, move, "queue", 10_000 * (k + 1) + 5000),
            }
    finally:
        emulator.close()

    rows = []
    for kind, label in (("release", "a release (moves stable and v1, creates v1.N)"),
                        ("again", "the same event again"), ("hotfix", "a hotfix below the line (nothing moves)")):
        cells = []
        for move in ("if-newer", "always"):
            samples, used = results[move]["single"]
            u = used[kind]
            cells.append(f"{ms(samples[kind])}; {u['BatchGetImage']} + {u['DescribeImages']} + {u['PutImage']} calls")
        rows.append((f"one event: {label}", *cells))
    for mode, label in (("direct", "Delivery=direct, 5 instances"), ("queue", "Delivery=queue, batches of 10, 4 instances")):
        cells = []
        for move in ("if-newer", "always"):
            r = results[move][mode]
            cells.append(f"{r['events'] / r['seconds']:.1f} events/s ({r['seconds']:.1f} s, {r['redelivered']} redeliveries); "
                         f"{r['PutImage']} PutImage, {r['throttled']} throttled; `stable` not on the highest version in "
                         f"{r['wrong']} of 10 repositories")
        rows.append((f"100 releases in 10 repositories at once, {label}, failures redelivered until done", *cells))
    header = ("measure", "`\"move\": \"if-newer\"`", "`\"move\": \"always\"` (same tags)")
    table = "\n".join(["| " + " | ".join(header) + " |", "|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows])
    head = (f"Measured {time.strftime('%Y-%m-%d')} on {bench.machine()}.\n\n"
            f"Command: `bench/moving-tags`. Emulated ECR latency: 20 ms per call; PutImage throttled at 10 per second "
            f"across the repositories, ECR's default account quota. Latency: median (min–max) over {args.runs} events; "
            f"calls: BatchGetImage + DescribeImages + PutImage made by the function for one event.\n")
    print(head)
    print(table)
    if args.write:
        bench.write_benchmarks(args.write, "moving-tags", head, table)


if __name__ == "__main__":
    main()

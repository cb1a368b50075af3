"""bench/fan-out: a sweep at registry scale, fanned out through the event queue.

The release bootstrap against the strict emulator (20 ms per ECR call, PutImage throttled
at ECR's default 10 per second for the account), with moto's SQS as the event queue. One
instance answers the scheduled sweep's fan-out; then 1, 4 or 10 instances (the queue's
maximum concurrency) sweep the repositories, fed ten messages a batch by a stand-in for
Lambda's event source mapping that deletes what each answer does not name as failed.
Each registry is swept twice: from scratch, then again with every tag in place. Prints one
table and writes it into BENCHMARKS.md (block "fan-out"). Asserts nothing: it prints figures.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import threading
import time
import urllib.request

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the emulator, the Runtime API stand-in, the BENCHMARKS.md writer)

ROOT, TARGET = bench.ROOT, bench.TARGET
RULES = json.dumps({"rules": [{"name": "release", "semver": True, "tags": ["stable", "v{major}", "v{major}.{minor}"]}]})
# Per repository of 100 images v1.0.0 ... v1.9.9: stable, v1 and v1.0 ... v1.9.
DERIVED = ["stable", "v1"] + [f"v1.{m}" for m in range(10)]


def version(n):
    return f"v1.{n // 10 % 10}.{n % 10}" if n < 100 else f"v{n // 100}.{n // 10 % 10}.{n % 10}"


def seed(emulator, prefix, repositories, images):
    """`repositories` repositories of `images` images each (v1.0.0 ... v1.9.9), pushed in parallel."""
    with open(os.path.join(ROOT, "tests/fixtures/manifests/docker-v2.json")) as f:
        base = f.read()

    def fill(r):
        ecr = boto3.client("ecr", endpoint_url=emulator.endpoint, region_name=bench.REGION,
                           aws_access_key_id="bench", aws_secret_access_key="bench")
        name = f"{prefix}/r{r:03d}"
        ecr.create_repository(repositoryName=name)
        for n in range(images):
            body = base.replace(bench.CONFIG_DIGEST, bench.CONFIG_DIGEST[:-8] + f"{(r << 12) + n:08x}")
            ecr.put_image(repositoryName=name, imageManifest=body, imageManifestMediaType=bench.MEDIA, imageTag=version(n))
        return name

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return list(pool.map(fill, range(repositories)))


def untag(emulator, names):
    """Removes the derived tags (the images keep their own), back to a registry never swept."""
    for name in names:
        emulator.ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": t} for t in DERIVED])


def missing(emulator, names):
    """Derived tags not in place (each repository should hold all of DERIVED)."""
    absent = 0
    for name in names:
        tags = {t for page in emulator.ecr.get_paginator("describe_images").paginate(repositoryName=name)
                for d in page["imageDetails"] for t in d.get("imageTags", [])}
        absent += sum(t not in tags for t in DERIVED)
    return absent


def function_calls(emulator):
    with urllib.request.urlopen(f"{emulator.endpoint}/_strict/function-calls") as r:
        return json.load(r)


def throttled(emulator, names):
    total = 0
    for name in names:
        with urllib.request.urlopen(f"{emulator.endpoint}/_strict/calls?repository={name}") as r:
            total += json.load(r).get("throttled", {}).get("PutImage", 0)
    return total


class Sweepers:
    """`n` bootstraps fed by the event queue ten messages a batch, as Lambda's event source mapping does."""

    def __init__(self, emulator, queue_url, n, per_second):
        env = {"RETAG_RULES": RULES, "RETAG_SWEEP_QUEUE_URL": queue_url, "RETAG_SWEEP_WRITES_PER_SECOND": f"{per_second:g}"}
        impl = bench.Implementation("ecr-retag", [os.path.join(TARGET, "release/bootstrap")], ROOT, lambda _: env)
        self.running = [impl.start(emulator, 0) for _ in range(n)]
        self.sqs = boto3.client("sqs", endpoint_url=emulator.endpoint, region_name=bench.REGION,
                                aws_access_key_id="bench", aws_secret_access_key="bench")
        self.url = queue_url
        self.batches = 0
        self.redelivered = 0
        self.lock = threading.Lock()

    def fan_out(self, prefix, max_writes):
        request = {"reconcile": {"repositories": [f"{prefix}/*"], "max_writes": max_writes, "fan_out": True}}
        (kind, body), _ = self.running[0][1].invoke(request)
        if kind != "response":
            raise RuntimeError(f"the fan-out failed: {body}")
        return body

    def drain(self, batch_size):
        """Until the queue is empty with no batch in flight (a failed message comes back at once)."""
        state = {"busy": 0, "empty_polls": 0}

        def done():
            with self.lock:
                return state["busy"] == 0 and state["empty_polls"] >= 3 * len(self.running)

        def worker(i):
            api = self.running[i][1]
            while not done():
                with self.lock:
                    state["busy"] += 1
                got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=batch_size, VisibilityTimeout=60)
                messages = got.get("Messages", [])
                if not messages:
                    with self.lock:
                        state["busy"] -= 1
                        state["empty_polls"] += 1
                    time.sleep(0.1)
                    continue
                with self.lock:
                    state["empty_polls"] = 0
                    self.batches += 1
                records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                            "eventSource": "aws:sqs", "awsRegion": bench.REGION} for m in messages]
                (kind, answer), _ = api.invoke({"Records": records})
                if kind != "response":
                    raise RuntimeError(f"a batch failed as a whole: {answer}")
                failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
                for m in messages:
                    if m["MessageId"] in failed:
                        with self.lock:
                            self.redelivered += 1
                        self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
                    else:
                        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
                with self.lock:
                    state["busy"] -= 1
                    state["empty_polls"] = 0

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(self.running))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def peak_rss_kib(self):
        return max(bench.peak_rss_kib(process) for process, _, _ in self.running)

    def close(self):
        for process, api, _ in self.running:
            bench.Implementation.stop(process, api)


def sweep_once(emulator, queue_url, prefix, names, sweepers, args):
    before = function_calls(emulator)
    throttled_before = throttled(emulator, names)
    # The sweepers share the account's quota: each gets its part of the total (0: unpaced).
    instances = Sweepers(emulator, queue_url, sweepers, args.writes_per_second / sweepers)
    try:
        started = time.perf_counter()
        fanned = instances.fan_out(prefix, args.max_writes)
        fanned_at = time.perf_counter() - started
        instances.drain(args.batch_size)
        # The drain ends after three empty polls per worker (0.1 s apart); that wait is not sweeping.
        wall = time.perf_counter() - started - 0.3
        rss = instances.peak_rss_kib()
        batches, redelivered = instances.batches, instances.redelivered
    finally:
        instances.close()
    after = function_calls(emulator)
    calls = {op: after.get(op, 0) - before.get(op, 0) for op in after}
    return {"wall": wall, "fan_out_s": fanned_at, "missing": missing(emulator, names), "enqueued": fanned.get("enqueued", {}).get("messages"),
            "calls": calls, "rss_mib": rss / 1024, "batches": batches, "redelivered": redelivered,
            "throttled": throttled(emulator, names) - throttled_before}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--quota", type=int, default=10, help="PutImage calls per second for the account")
    parser.add_argument("--sweepers", default="1,4,10")
    parser.add_argument("--repositories", default="10,100", help="registry sizes, in repositories of 100 images")
    parser.add_argument("--max-writes", type=int, default=200, help="per sweep message (the template's ReconcileMaxWrites)")
    parser.add_argument("--writes-per-second", type=float, default=9.0,
                        help="the sweepers' PutImage calls per second in all, split evenly (RETAG_SWEEP_WRITES_PER_SECOND each); 0: unpaced")
    parser.add_argument("--block", default="fan-out", help="which generated block of BENCHMARKS.md")
    parser.add_argument("--batch-size", type=int, default=10, help="messages per invocation (the template's QueueBatchSize, at most 10 here)")
    parser.add_argument("--write", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    counts = [int(n) for n in args.sweepers.split(",")]

    emulator = bench.Emulator(args.latency_ms)
    rows = []
    try:
        sqs = boto3.client("sqs", endpoint_url=emulator.endpoint, region_name=bench.REGION,
                           aws_access_key_id="bench", aws_secret_access_key="bench")
        queue_url = sqs.create_queue(QueueName="fan-out")["QueueUrl"]
        sizes = [int(n) for n in args.repositories.split(",")]
        registries = {}
        for repositories in sizes:
            print(f"seeding {repositories} repositories x 100 images ...", file=sys.stderr)
            registries[repositories] = seed(emulator, f"scale{repositories}", repositories, 100)
        # The account's quota from here on (the pushes above were docker's, before the sweep).
        req = urllib.request.Request(f"{emulator.endpoint}/_strict/quota", method="POST",
                                     data=json.dumps({"operation": "PutImage", "prefix": "", "per_second": args.quota}).encode())
        urllib.request.urlopen(req).read()
        for repositories in sizes:
            names = registries[repositories]
            for n in counts:
                for state in ("from scratch", "all in place"):
                    if state == "from scratch":
                        untag(emulator, names)
                    print(f"{repositories * 100} images, {n} sweepers, {state} ...", file=sys.stderr)
                    result = sweep_once(emulator, queue_url, f"scale{repositories}", names, n, args)
                    rows.append((repositories, n, state, result))
                    print(json.dumps(result), file=sys.stderr)
    finally:
        emulator.close()

    lines = ["| images (repositories × 100) | sweepers | registry | wall time | DescribeRepositories | DescribeImages | BatchGetImage | PutImage (throttled) | floor: DescribeImages / BatchGetImage / PutImage | batches (redelivered) | tags missing after | peak RSS per sweeper |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for repositories, n, state, r in rows:
        c = r["calls"]
        fresh = state == "from scratch"
        floor = f"{repositories} / {10 * repositories if fresh else 0} / {12 * repositories if fresh else 0}"
        lines.append(
            f"| {repositories * 100:,} ({repositories}) | {n} | {state} | {r['wall']:.1f} s | {c.get('DescribeRepositories', 0)} | "
            f"{c.get('DescribeImages', 0)} | {c.get('BatchGetImage', 0)} | {c.get('PutImage', 0)} ({r['throttled']}) | {floor} | "
            f"{r['batches']} ({r['redelivered']}) | {r['missing']} | {r['rss_mib']:.1f} MiB |")
    table = "\n".join(lines)
    header = bench.header("bench/fan-out",
                          f"Emulated ECR latency {args.latency_ms:g} ms per call; PutImage quota "
                          f"{args.quota} per second for the account; rules: one semver rule deriving `stable`, `v{{major}}`, "
                          f"`v{{major}}.{{minor}}`; each repository holds v1.0.0 … v1.9.9, so 12 tags on 10 of its images. "
                          f"Sweep messages of at most {args.max_writes} writes, batches of at most {args.batch_size}; "
                          + (f"the sweepers' writes paced to {args.writes_per_second:g} per second in all (each its share)."
                             if args.writes_per_second else "the sweepers' writes unpaced."))
    bench.publish(args, header, table)


if __name__ == "__main__":
    main()

"""bench/records: what a promotion record costs an event (latency, calls) against the same rule
without "record": true.

The release bootstrap against the strict emulator (20 ms per ECR and KMS call, as the main run),
one instance, one event at a time: a new release (three tags written, so one record), then the
same event again (a redelivery: the tags and the record are in place). The record is signed with
the emulator's KMS (moto's, an ECC_NIST_P256 key). Prints one table and writes it into
BENCHMARKS.md (block "records"). Asserts nothing: it prints figures.
"""

import argparse
import json
import os
import statistics
import sys
import urllib.request

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the emulator, the Runtime API stand-in, the BENCHMARKS.md writer)

ROOT, TARGET = bench.ROOT, bench.TARGET
OPERATIONS = ("BatchGetImage", "PutImage", "ListImageReferrers", "BatchCheckLayerAvailability",
              "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload")


def rules(record):
    rule = {"name": "release", "semver": True, "tags": ["stable", "v{major}", "v{major}.{minor}"]}
    if record:
        rule["record"] = True
    return json.dumps({"rules": [rule]})


def function_calls(emulator, repository):
    with urllib.request.urlopen(f"{emulator.endpoint}/_strict/function-calls?repository={repository}") as r:
        return json.load(r)


def used(emulator, repository):
    """Every call the function made so far on `repository`, and its KMS calls."""
    ecr = function_calls(emulator, repository)
    kms = function_calls(emulator, "(kms)")
    return {**{op: ecr.get(op, 0) for op in OPERATIONS}, "kms:Sign": kms.get("Sign", 0)}


def measure(emulator, record, runs, key):
    repository = f"records-{'on' if record else 'off'}"
    pushed = emulator.seed(repository, runs + 1, 50_000 if record else 60_000)
    env = {"RETAG_RULES": rules(record), **({"RETAG_RECORD_KEY": key} if record else {})}
    impl = bench.Implementation("ecr-retag", [os.path.join(TARGET, "release/bootstrap")], ROOT, lambda _: env)
    process, api, _ = impl.start(emulator, 0)
    samples = {"release": [], "again": []}
    calls = {}
    try:
        api.invoke(bench.event(repository, *pushed[0]))  # warm-up: connections, the KMS client
        for tag, digest in pushed[1:]:
            for kind in ("release", "again"):
                before = used(emulator, repository)
                answer, seconds = api.invoke(bench.event(repository, tag, digest))
                if answer[0] != "response":
                    raise RuntimeError(answer)
                after = used(emulator, repository)
                samples[kind].append(seconds)
                calls[kind] = {op: after[op] - before[op] for op in after if after[op] != before[op]}
    finally:
        bench.Implementation.stop(process, api)
    return samples, calls


def ms(samples):
    values = sorted(s * 1000 for s in samples)
    return f"{statistics.median(values):.0f} ms ({values[0]:.0f}–{values[-1]:.0f})"


def described(calls):
    return ", ".join(f"{n} {op}" for op, n in sorted(calls.items())) or "none"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--write", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    emulator = bench.Emulator(20.0)
    try:
        kms = boto3.client("kms", endpoint_url=emulator.endpoint, region_name=bench.REGION,
                           aws_access_key_id="bench", aws_secret_access_key="bench")
        key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        results = {record: measure(emulator, record, args.runs, key) for record in (False, True)}
    finally:
        emulator.close()
    rows = []
    for kind, label in (("release", "a release: three tags written"), ("again", "the same event again (a redelivery)")):
        cells = []
        for record in (False, True):
            samples, calls = results[record]
            cells.append(f"{ms(samples[kind])}; {described(calls[kind])}")
        rows.append((f"one event: {label}", *cells))
    header = ("measure", "without `record`", "with `\"record\": true`")
    table = "\n".join(["| " + " | ".join(header) + " |", "|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows])
    head = bench.header("bench/records", f"Emulated latency: 20 ms per ECR and KMS call. One instance, one event at a time; "
                        f"latency: median (min–max) over {args.runs} events; calls: those the function made for the last event "
                        f"of each kind.")
    print(head)
    print(table)
    if args.write:
        bench.write_benchmarks(args.write, "records", head, table)


if __name__ == "__main__":
    main()

"""bench/init: what ecr-retag's start-up adds to the INIT of the smallest lambda_runtime
function (bench/init_floor.rs, same release profile), measured alternately in one run: process
start to the first GET /next of the Runtime API stand-in. Prints medians and ranges; asserts
nothing. Usage: bench/init [--runs N] [--queue | --records]   (--queue: with RETAG_SWEEP_QUEUE_URL set, as
Delivery=queue deploys it; --records: with a rule that records and RETAG_RECORD_KEY set)
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import local_lambda  # noqa: E402  (the Runtime API stand-in the scripts use)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def init_once(command, extra):
    api = local_lambda.RuntimeApi()
    env = {"PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_NAME": "bench",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": "eu-west-1",
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", **extra}
    spawned = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while api.first_next is None:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited during INIT")
            time.sleep(0.0002)
        return api.first_next - spawned
    finally:
        process.kill()
        process.wait()
        api.close()


def summary(samples):
    ms = [s * 1000 for s in samples]
    return f"{statistics.median(ms):.1f} ms ({min(ms):.1f}–{max(ms):.1f})", statistics.median(ms)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--queue", action="store_true", help="with RETAG_SWEEP_QUEUE_URL set (Delivery=queue)")
    parser.add_argument("--records", action="store_true", help="with a rule that records and RETAG_RECORD_KEY set")
    parser.add_argument("--binary", default=os.path.join(TARGET, "release", "bootstrap"), help="the bootstrap to measure (before/after)")
    args = parser.parse_args()
    ours = {"RETAG_RULES_FILE": os.path.join(ROOT, "rules.json")}
    if args.queue:
        ours["RETAG_SWEEP_QUEUE_URL"] = "https://sqs.eu-west-1.amazonaws.com/123456789012/ecr-retag-events"
    if args.records:
        ours = {"RETAG_RULES": '{"rules":[{"name":"release","semver":true,"tags":["stable","v{major}"],"record":true}]}',
                "RETAG_RECORD_KEY": "arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}
    floor, retag = [], []
    for _ in range(args.runs):  # alternately, so that the machine's drift touches both alike
        floor.append(init_once([os.path.join(TARGET, "release", "examples", "init-floor")], {}))
        retag.append(init_once([args.binary], ours))
    (f_text, f_median), (r_text, r_median) = summary(floor), summary(retag)
    setting = " (RETAG_SWEEP_QUEUE_URL set)" if args.queue else " (a rule that records, RETAG_RECORD_KEY set)" if args.records else ""
    print(f"INIT over {args.runs} starts each, alternately{setting}:")
    print(f"  floor (echo handler, same profile)  {f_text}")
    print(f"  ecr-retag                           {r_text}")
    print(f"  added by ecr-retag                  {r_median - f_median:.1f} ms (medians)")


if __name__ == "__main__":
    main()

"""Every events/ sample through scripts/invoke, as a user runs it, doing what the README says.

Run by ./scripts/test:  .venv/bin/python -m unittest discover -s tests/scripts
"""

import json
import os
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def invoke(*args):
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}  # its own emulator
    return subprocess.run([os.path.join(ROOT, "scripts/invoke"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def answers(*args):
    run = invoke("--format", "jsonl", *args)
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return run, {os.path.basename(a["file"]): a["answer"] for a in lines}


def outcomes(answer):
    return {t["tag"]: t["outcome"] for t in answer["tags"]}


class Samples(unittest.TestCase):
    def test_help_prints_usage_without_building_or_starting_anything(self):
        # No cargo and no Python tools on PATH: help must need neither.
        run = subprocess.run([os.path.join(ROOT, "scripts/invoke"), "--help"], cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=60)
        self.assertEqual((run.returncode, run.stderr), (0, ""))
        self.assertTrue(run.stdout.startswith("Invokes the function locally"), run.stdout)
        self.assertIn("--rules FILE", run.stdout)
        usage = subprocess.run([os.path.join(ROOT, "scripts/invoke")], cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(usage.returncode, 2, "no event file is a usage mistake")
        self.assertIn("scripts/invoke events/push.json", usage.stderr)

    def test_the_samples_for_rules_json(self):
        names = ["push.json", "push-multi-arch-index.json", "push-untagged-child.json", "push-main-build.json",
                 "push-failure.json", "delete.json", "scan-complete.json", "inspector-scan.json", "push-signature.json", "direct-request-dry-run.json",
                 "direct-request.json", "sqs-batch.json", "reconcile-dry-run.json", "reconcile.json", "reconcile-fan-out.json"]
        self.assertEqual(sorted(n for n in os.listdir(os.path.join(ROOT, "events")) if not n.startswith(("platform-", "promote-"))),
                         sorted(names), "every sample is checked here or below")
        run, got = answers(*[f"events/{n}" for n in names])
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(outcomes(got["push.json"]),
                         {"20261124": "created", "stable": "created", "v1": "created", "v1.4": "created"})
        self.assertEqual(outcomes(got["push-multi-arch-index.json"]),
                         {"20261124": "moved", "stable": "moved", "v2": "created", "v2.0": "created"})
        self.assertEqual(outcomes(got["push-main-build.json"]), {"edge": "created", "main-20261124-101502": "created"})
        for name in ["push-untagged-child.json", "push-failure.json", "delete.json", "scan-complete.json", "inspector-scan.json",
                     "push-signature.json"]:
            self.assertEqual(got[name]["status"], "ignored", name)
        self.assertEqual(got["direct-request-dry-run.json"]["status"], "dry_run")
        self.assertEqual(got["direct-request.json"]["status"], "applied")
        # Three messages: a push to team/web, a delete, a push to the missing team/gone.
        self.assertEqual(got["sqs-batch.json"], {"batchItemFailures": [{"itemIdentifier": "4f1b2c3d-0003-4e5f-8a9b-0c1d2e3f4a5b"}]})
        dry, real = got["reconcile-dry-run.json"], got["reconcile.json"]
        self.assertEqual((dry["status"], dry["dry_run"], dry["writes"]), ("complete", True, 0), dry)
        self.assertEqual([r["tags_written"] for r in dry["repositories"]], [0] * len(dry["repositories"]), dry)
        would = [c for r in dry["repositories"] for c in r["changes"]]
        self.assertEqual(dry["would_write"], len(would), dry)
        self.assertTrue(would and all(c["outcome"].startswith("would_") for c in would), dry)
        self.assertEqual(real["status"], "complete", real)
        self.assertEqual([r["repository"] for r in real["repositories"]], ["team/api", "team/web"])
        # The fan-out sends the local event queue a sweep per repository, and writes nothing itself.
        fanned = got["reconcile-fan-out.json"]
        self.assertEqual((fanned["writes"], fanned["enqueued"]["messages"], fanned["enqueued"]["repositories"]),
                         (0, 2, ["team/api", "team/web"]), fanned)

    def test_the_platform_samples_for_the_promotion_rules(self):
        names = ["platform-push-v1.3.0.json", "platform-signature-v1.3.0.json", "platform-scan-passed.json",
                 "platform-push-hotfix-v1.2.9.json", "platform-scan-blocked.json", "platform-push-latest.json"]
        run, got = answers("--rules", "examples/promotion-rules.json", *[f"events/{n}" for n in names])
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(outcomes(got[names[0]]), {"stable": "deferred", "v1": "created", "v1.3": "created"})
        self.assertEqual(outcomes(got[names[1]]), {"stable": "deferred"}, "signed, not yet scanned")
        self.assertEqual(outcomes(got[names[2]]), {"stable": "created"})
        self.assertEqual(outcomes(got[names[3]]), {"stable": "deferred", "v1": "skipped_not_newer", "v1.2": "created"})
        self.assertEqual(outcomes(got[names[4]]), {"stable": "blocked"})
        self.assertEqual(outcomes(got[names[5]]), {"edge": "created", "edge-20261124": "created", "latest": "removed"})

    def test_the_promotion_sample_copies_the_image_and_its_signature_into_prod(self):
        self.assertEqual(sorted(n for n in os.listdir(os.path.join(ROOT, "events")) if n.startswith("promote-")), ["promote-push.json"])
        run, got = answers("--rules", "examples/promotion-to-prod.json", "events/promote-push.json", "events/promote-push.json")
        self.assertEqual(run.returncode, 0, run.stderr)
        tags = [(t.get("repository"), t["tag"], t["outcome"]) for t in got["promote-push.json"]["tags"]]
        # The second answer (a redelivery) is the one kept: everything in place, nothing written.
        self.assertEqual(tags, [(None, "latest-release", "unchanged"), ("prod/api", "stable", "unchanged"),
                                ("prod/api", "v1", "unchanged"), ("prod/api", "v1.4.2", "unchanged")])
        first = [line for line in run.stdout.splitlines() if line.startswith("{")][0]
        self.assertEqual({t["outcome"] for t in json.loads(first)["answer"]["tags"]}, {"created"}, first)

    def test_a_function_that_cannot_start_says_why_within_seconds(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as rules:
            rules.write('{"rules": [{"name": "release", "semver": true, "tags": ["v{majr}"]}]}')
            rules.flush()
            started = time.monotonic()
            run = invoke("--rules", rules.name, "events/push.json")
        self.assertEqual(run.returncode, 2, run.stdout)
        self.assertIn("INIT failed", run.stderr)
        self.assertIn("unknown placeholder `{majr}`", run.stderr)
        self.assertLess(time.monotonic() - started, 60, "seconds, not a hang (the build is already done)")

    def test_without_arguments_it_says_how_to_use_it(self):
        run = invoke()
        self.assertEqual(run.returncode, 2)
        self.assertIn("scripts/invoke events/push.json", run.stderr)


if __name__ == "__main__":
    unittest.main()

"""Both deployment paths carry a user's rule file into the package, byte for byte, and the
function reads it from there: the README's `sam build` and `cargo lambda build`/`deploy`.

Run by ./scripts/test:  .venv-deploy/bin/python -m unittest discover -s tests/deploy
Needs the deployment tools on PATH (.venv-deploy/bin) and ECR_RETAG_BIN, the host build of
the bootstrap, to read the packaged file as the function does. The arm64 builds share the
build cache, so after the first they cost seconds.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Everything a command line or a parameter parser might split or mangle: commas, quotes,
# braces, backslashes in regexes, = signs, spaces, non-ASCII.
AWKWARD_RULES = """{
  "rules": [
    {"name": "release, \\"quoted\\" = ünïcødé ✓", "semver": true,
     "tags": ["stable", "v{major}", "v{major}.{minor}", "r{{x}}", "{date:%Y,%m}"]},
    {"name": "builds", "match": "main-(?<sha>[0-9a-f]{7,40})(\\\\.\\\\d+)?", "repositories": ["team/*", "app"],
     "tags": ["edge", "main-{sha}"]}
  ]
}
"""


def run(*args, **kwargs):
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1800, **kwargs)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def reads_rules(test, package_dir, rules_file):
    """The host bootstrap, started as in the package (LAMBDA_TASK_ROOT), gets past reading the
    rule file: it exits 2 only on invalid configuration, and otherwise fails later, to reach
    the Runtime API that is not there. check-rules on the same file parses it."""
    binary = os.environ.get("ECR_RETAG_BIN")
    if not binary:
        test.skipTest("ECR_RETAG_BIN is not set")
    env = {"PATH": os.environ.get("PATH", ""), "LAMBDA_TASK_ROOT": package_dir, "RETAG_RULES_FILE": rules_file,
           "AWS_REGION": "eu-west-1", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", "AWS_LAMBDA_FUNCTION_NAME": "t",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "1"}
    started = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=30)
    test.assertNotEqual(started.returncode, 2, started.stdout + started.stderr)
    checked = subprocess.run([binary, "check-rules", os.path.join(package_dir, rules_file)],
                             capture_output=True, text=True, timeout=30)
    test.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
    test.assertIn("2 rules, valid", checked.stdout)


class Packages(unittest.TestCase):
    def setUp(self):
        # Inside the project: cargo lambda's --include takes paths relative to it.
        self.work = tempfile.mkdtemp(dir=ROOT, prefix=".test-packages-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.rules = os.path.join(self.work, "team-rules.json")
        with open(self.rules, "w", encoding="utf-8") as f:
            f.write(AWKWARD_RULES)
        json.loads(AWKWARD_RULES)

    def test_sam_build_packages_the_rule_file_the_function_reads(self):
        build = os.path.join(self.work, "sam")
        run("sam", "build", "--build-dir", build, env=dict(os.environ, RULES=self.rules, SAM_CLI_TELEMETRY="0"))
        package = os.path.join(build, "RetagFunction")
        self.assertEqual(sorted(os.listdir(package)), ["bootstrap", "rules.json"])
        with open(os.path.join(package, "rules.json"), "rb") as f, open(self.rules, "rb") as g:
            self.assertEqual(f.read(), g.read(), "byte for byte")
        with open(os.path.join(build, "template.yaml"), encoding="utf-8") as f:
            built = f.read()
        variable = re.search(r"RETAG_RULES_FILE: (\S+)", built).group(1)
        self.assertNotIn("RETAG_RULES:", built, "one source of rules")
        reads_rules(self, package, variable)

    def test_cargo_lambda_packages_the_rule_file_and_deploys_the_variable(self):
        out = os.path.join(self.work, "lambda")
        relative = os.path.relpath(self.rules, ROOT)
        run("cargo", "lambda", "build", "--release", "--arm64", "--output-format", "zip",
            "--include", relative, "--lambda-dir", out)
        package = os.path.join(self.work, "unzipped")
        with zipfile.ZipFile(os.path.join(out, "ecr-retag", "bootstrap.zip")) as z:
            self.assertEqual(sorted(z.namelist()), sorted(["bootstrap", relative]))
            z.extractall(package)
        with open(os.path.join(package, relative), "rb") as f, open(self.rules, "rb") as g:
            self.assertEqual(f.read(), g.read(), "byte for byte")
        env = dict(os.environ, AWS_REGION="eu-west-1", AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
        dry = run("cargo", "lambda", "deploy", "--dry", "--lambda-dir", out,
                  "--env-var", f"RETAG_RULES_FILE={relative}", "ecr-retag", env=env)
        self.assertIn(f'"RETAG_RULES_FILE": "{relative}"', dry.stdout + dry.stderr)
        reads_rules(self, package, relative)

    def test_cargo_lambda_by_default_packages_rules_json(self):
        out = os.path.join(self.work, "default")
        run("cargo", "lambda", "build", "--release", "--arm64", "--output-format", "zip", "--lambda-dir", out)
        with zipfile.ZipFile(os.path.join(out, "ecr-retag", "bootstrap.zip")) as z:
            self.assertEqual(sorted(z.namelist()), ["bootstrap", "rules.json"])
            with open(os.path.join(ROOT, "rules.json"), "rb") as f:
                self.assertEqual(z.read("rules.json"), f.read())
        env = dict(os.environ, AWS_REGION="eu-west-1", AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
        dry = run("cargo", "lambda", "deploy", "--dry", "--lambda-dir", out, "ecr-retag", env=env)
        self.assertIn('"RETAG_RULES_FILE": "rules.json"', dry.stdout + dry.stderr)


if __name__ == "__main__":
    unittest.main()

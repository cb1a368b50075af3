"""Both deployment paths carry a user's rule file into the package, byte for byte, and the
function reads it from there: the README's `sam build`, and its `cargo lambda build` and
`cargo lambda deploy`, checked in what deploy uploads (to moto's Lambda, which keeps the zip's
SHA-256), not in the zip before it.

Run by ./scripts/test:  .venv-deploy/bin/python -m unittest discover -s tests/deploy
Needs the deployment tools on PATH (.venv-deploy/bin) and ECR_RETAG_BOOTSTRAP and ECR_RETAG_CLI, the host builds of
the bootstrap, to read the packaged file as the function does. The arm64 builds share the
build cache, so after the first they cost seconds.
"""

import base64
import hashlib
import json
import os
import socket
import re
import shutil
import subprocess
import tempfile
import time
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


def reads_rules(test, package_dir, rules_file, summary="2 rules, valid"):
    """The host bootstrap, started as in the package (LAMBDA_TASK_ROOT), gets past reading the
    rule file: it exits 2 only on invalid configuration, and otherwise fails later, to reach
    the Runtime API that is not there. check-rules on the same file parses it."""
    binary, cli = os.environ.get("ECR_RETAG_BOOTSTRAP"), os.environ.get("ECR_RETAG_CLI")
    if not (binary and cli):
        test.skipTest("ECR_RETAG_BOOTSTRAP and ECR_RETAG_CLI are not set")
    env = {"PATH": os.environ.get("PATH", ""), "LAMBDA_TASK_ROOT": package_dir, "RETAG_RULES_FILE": rules_file,
           "AWS_REGION": "eu-west-1", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", "AWS_LAMBDA_FUNCTION_NAME": "t",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "1"}
    started = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=30)
    test.assertNotEqual(started.returncode, 2, started.stdout + started.stderr)
    checked = subprocess.run([cli, "check-rules", os.path.join(package_dir, rules_file)],
                             capture_output=True, text=True, timeout=30)
    test.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
    if summary:
        test.assertIn(summary, checked.stdout)


def moto_lambda(endpoint):
    import boto3
    return boto3.client("lambda", endpoint_url=endpoint, region_name="eu-west-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


class Packages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # moto's Lambda and IAM keep what `cargo lambda deploy` sends them; deploy attaches
        # AWSLambdaBasicExecutionRole to the role it creates, so moto loads AWS's managed policies.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cls.moto = subprocess.Popen([os.path.join(ROOT, ".venv/bin/moto_server"), "-p", str(port)],
                                    env=dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.lambda_endpoint = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.moto.terminate()
        cls.moto.wait(timeout=30)

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
        built = run("sam", "build", "--build-dir", build, env=dict(os.environ, RULES=self.rules, SAM_CLI_TELEMETRY="0"))
        # The build's progress shows while a person waits, not only when it fails.
        self.assertIn("Building the arm64 bootstrap", built.stderr)
        self.assertRegex(built.stderr, r"Finished `release` profile")
        package = os.path.join(build, "RetagFunction")
        self.assertEqual(sorted(os.listdir(package)), ["bootstrap", "rules.json"])
        with open(os.path.join(package, "rules.json"), "rb") as f, open(self.rules, "rb") as g:
            self.assertEqual(f.read(), g.read(), "byte for byte")
        with open(os.path.join(build, "template.yaml"), encoding="utf-8") as f:
            built = f.read()
        variable = re.search(r"RETAG_RULES_FILE: (\S+)", built).group(1)
        self.assertNotIn("RETAG_RULES:", built, "one source of rules")
        reads_rules(self, package, variable)

    def cargo_lambda_build(self):
        """The README's build: the arm64 function, `bootstrap`. A zip left by an earlier `--output-format zip`
        build is there too, as on a machine that tried both: deploy must not ship it."""
        out = os.path.join(self.work, "lambda")
        run("cargo", "lambda", "build", "--release", "--arm64", "--bin", "bootstrap", "--output-format", "zip", "--lambda-dir", out)
        run("cargo", "lambda", "build", "--release", "--arm64", "--bin", "bootstrap", "--lambda-dir", out)
        return out

    def uploaded(self, out, function, *extra):
        """`cargo lambda deploy` to moto's Lambda: the zip it uploaded (moto's CodeSha256 is that
        of the zip deploy left on disk), unpacked, and the function's environment. The binary is
        `bootstrap`: Cargo.toml's deploy section says so for the function `ecr-retag`, and
        another function name needs `--binary-name bootstrap` (cargo-lambda 1.9 applies the
        section's binary_name only to the package's own name)."""
        env = dict(os.environ, AWS_REGION="eu-west-1", AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
        run("cargo", "lambda", "deploy", "--lambda-dir", out, "--endpoint-url", self.lambda_endpoint,
            *extra, function, env=env)
        got = moto_lambda(self.lambda_endpoint).get_function(FunctionName=function)["Configuration"]
        zipped = os.path.join(out, "bootstrap", "bootstrap.zip")
        with open(zipped, "rb") as f:
            data = f.read()
        self.assertEqual((got["CodeSha256"], got["CodeSize"]),
                         (base64.b64encode(hashlib.sha256(data).digest()).decode(), len(data)), "what deploy uploaded")
        package = os.path.join(self.work, function)
        with zipfile.ZipFile(zipped) as z:
            self.assertEqual(sorted(z.namelist()), ["bootstrap", "rules.json"])
            z.extractall(package)
        return package, got["Environment"]["Variables"]

    def test_cargo_lambda_deploy_uploads_rules_json(self):
        out = self.cargo_lambda_build()
        env = dict(os.environ, AWS_REGION="eu-west-1", AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
        dry = run("cargo", "lambda", "deploy", "--dry", "--lambda-dir", out, "ecr-retag", env=env)
        self.assertRegex(dry.stdout + dry.stderr, r"files included in the zip file:\s+- rules\.json\s+- bootstrap")
        self.assertIn('"RETAG_RULES_FILE": "rules.json"', dry.stdout + dry.stderr)
        package, variables = self.uploaded(out, "ecr-retag")
        with open(os.path.join(package, "rules.json"), "rb") as f, open(os.path.join(ROOT, "rules.json"), "rb") as g:
            self.assertEqual(f.read(), g.read(), "byte for byte")
        self.assertEqual(variables, {"RETAG_RULES_FILE": "rules.json", "RETAG_DRY_RUN": "false"})
        reads_rules(self, package, variables["RETAG_RULES_FILE"], None)

    def test_cargo_lambda_deploy_uploads_a_rule_file_from_outside_the_project_as_rules_json(self):
        outside = tempfile.mkdtemp(prefix="team-rules-")
        self.addCleanup(shutil.rmtree, outside, True)
        rules = os.path.join(outside, "team.json")
        shutil.copyfile(self.rules, rules)
        out = self.cargo_lambda_build()
        package, variables = self.uploaded(out, "team-retag", "--binary-name", "bootstrap", "--include", f"rules.json:{rules}")
        with open(os.path.join(package, "rules.json"), "rb") as f, open(rules, "rb") as g:
            self.assertEqual(f.read(), g.read(), "byte for byte")
        reads_rules(self, package, variables["RETAG_RULES_FILE"])


if __name__ == "__main__":
    unittest.main()

"""The function's role fits IAM's quotas, checked on the template as AWS SAM transforms it, with
every feature on and Repositories and PromotionTargets up to CloudFormation's 4,096 bytes each:
10,240 characters of inline policy in all, 6,144 per managed policy, at most 10 managed policies.
And every named repository is granted, exactly: no entry lost between the policies.

Run by ./scripts/test:  .venv/bin/python -m unittest discover -s tests/template
"""

import json
import logging
import os
import random
import re
import string
import subprocess
import sys
import unittest

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_template import ROOT, Resolver  # noqa: E402

logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its metrics warnings
INLINE_TOTAL, MANAGED_EACH, MANAGED_COUNT, PARAMETER_BYTES = 10_240, 6_144, 10, 4_096
PREFIX = "arn:*:ecr:*:*:repository/"
EVERY_FEATURE = {"RemoveSourceTags": "true", "RestoreArchivedImages": "true", "SignatureEvents": "managed",
                 "ScanEvents": "both", "Delivery": "queue", "ReconcileSchedule": "rate(1 hour)",
                 "MetricsByRepository": "true", "AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:alarms",
                 "RecordSigningKey": "arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}


class ManagedPolicies:
    """AWS SAM's managed policy loader, offline: the one AWS managed policy the function gets."""

    def load(self):
        return {"AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


def transformed(parameters):
    """template.yaml through the pinned aws-sam-translator, as CloudFormation would deploy it."""
    template, problems = decode(os.path.join(ROOT, "template.yaml"))
    assert not problems, problems
    template = json.loads(json.dumps(template))
    # AWS::LanguageExtensions runs in CloudFormation, before SAM: the template uses none of its
    # functions, so SAM's transform alone gives what CloudFormation creates.
    assert template["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]
    template["Transform"] = "AWS::Serverless-2016-10-31"
    # `sam deploy` replaces the local CodeUri with the uploaded package's S3 location.
    template["Resources"]["RetagFunction"]["Properties"]["CodeUri"] = "s3://bucket/package.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    return transform(template, parameters, ManagedPolicies())


def characters(document):
    """What IAM counts: the policy's JSON without white space."""
    return len(re.sub(r"\s", "", json.dumps(document, separators=(",", ":"))))


def role_policies(parameters):
    """The role's inline policy documents and the documents of the managed policies attached to it."""
    template = transformed(parameters)
    resolver = Resolver(template, **parameters)
    role = resolver.resource("RetagFunctionRole")["Properties"]
    inline = [p["PolicyDocument"] for p in role["Policies"]]
    managed, aws_managed = {}, []
    for arn in role["ManagedPolicyArns"]:
        if arn.startswith("<") and arn.endswith(">"):  # a Ref to a policy in the template
            name = arn[1:-1]
            resource = template["Resources"][name]
            assert resource["Type"] == "AWS::IAM::ManagedPolicy", name
            assert resolver.conditions[resource["Condition"]] if "Condition" in resource else True, name
            managed[name] = resolver.resource(name)["Properties"]["PolicyDocument"]
        else:
            aws_managed.append(arn)
    return inline, managed, aws_managed


def granted(documents, sid_prefix):
    """{resource: actions} over every statement whose Sid starts with sid_prefix."""
    out = {}
    for document in documents:
        for statement in document["Statement"]:
            if statement["Sid"].startswith(sid_prefix):
                for resource in statement["Resource"]:
                    out.setdefault(resource, set()).update(statement["Action"])
    return out


def names(count, length, seed):
    """count distinct repository names of exactly length characters."""
    rng = random.Random(seed)
    out = set()
    while len(out) < count:
        name = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(length))
        if length > 8:
            name = name[:4] + "/" + name[5:]
        out.add(name)
    return sorted(out)


def fill(length, seed):
    """Names of `length` characters up to 4,096 bytes, the last one shorter to use every byte."""
    count = (PARAMETER_BYTES + 1) // (length + 1)
    out = names(count, length, seed)
    left = PARAMETER_BYTES - len(",".join(out)) - 1
    if left >= 2:
        out.append(names(1, left, seed + 1)[0])
    return out


class TheRoleFitsIamsQuotas(unittest.TestCase):
    def check(self, repositories, targets, **more):
        parameters = dict(EVERY_FEATURE, Repositories=",".join(repositories), PromotionTargets=",".join(targets), **more)
        inline, managed, aws_managed = role_policies(parameters)
        sizes = {name: characters(d) for name, d in managed.items()}
        self.assertLessEqual(sum(characters(d) for d in inline), INLINE_TOTAL, "inline, all policies together")
        self.assertLessEqual(max(sizes.values()), MANAGED_EACH, sizes)
        self.assertLessEqual(len(managed) + len(aws_managed), MANAGED_COUNT)
        documents = inline + list(managed.values())
        for document in documents:
            self.assertEqual(document.get("Version"), "2012-10-17", "IAM reads a policy without Version as 2008-10-17")
        # Exactly the named repositories, each with every action, and nothing else.
        sources = granted(documents, "AllowedRepositories")
        self.assertEqual(set(sources), {PREFIX + n for n in repositories})
        every = {"ecr:BatchGetImage", "ecr:PutImage", "ecr:DescribeImages", "ecr:ListTagsForResource",
                 "ecr:UpdateImageStorageClass", "ecr:DescribeImageSigningStatus"}
        if parameters["RemoveSourceTags"] == "true":
            every.add("ecr:BatchDeleteImage")
        if targets:  # a promotion reads the sources' layers
            every.add("ecr:GetDownloadUrlForLayer")
        if parameters.get("RecordSigningKey"):  # promotion records upload their blobs
            every.update({"ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"})
        self.assertEqual({frozenset(a) for a in sources.values()}, {frozenset(every)})
        if targets:
            self.assertEqual(set(granted(documents, "PromoteIntoTargets")), {PREFIX + n for n in targets})
        return inline, sizes

    def test_4096_bytes_of_24_character_names_in_both_lists(self):
        repositories, targets = fill(24, 1), fill(24, 2)
        self.assertEqual((len(",".join(repositories).encode()), len(",".join(targets).encode())), (PARAMETER_BYTES,) * 2)
        inline, sizes = self.check(repositories, targets)
        # The figures docs/iam-quotas.md quotes.
        print(f"\n24-character names, {len(repositories)} per list: inline {sum(characters(d) for d in inline)}, "
              f"managed {sorted(sizes.values())}", file=sys.stderr)

    def test_4096_bytes_of_names_of_other_lengths(self):
        for length in [22, 40, 100, 256]:
            with self.subTest(length=length):
                self.check(fill(length, length), fill(length, length + 1000))

    def test_the_longest_names_crowded_into_one_policy(self):
        # 15 names of 256 characters and 33 of 2 in the first policy's 48 entries: 5,766 characters.
        crowded = names(15, 256, 4) + names(80, 2, 3)
        self.assertLessEqual(len(",".join(crowded)), PARAMETER_BYTES)
        self.check(crowded, crowded)

    def test_the_most_entries_the_policies_name(self):
        self.check(names(192, 20, 8), names(192, 20, 9))

    def test_short_lists_and_the_defaults(self):
        self.check(["*"], [])
        self.check(["app", "team/*"], ["prod/*"])
        self.check(["app"], ["prod/app"], RemoveSourceTags="false", Delivery="direct")

    def test_a_repeated_entry_is_granted_like_the_others(self):
        listed = fill(30, 6)
        self.check(listed[:60] + listed[:60] + listed[60:80], listed[:3])

    def test_a_list_longer_than_the_policies_hold_is_refused_with_a_message(self):
        too_many = names(193, 3, 7)
        parameters = dict(EVERY_FEATURE, Repositories=",".join(too_many), PromotionTargets="prod/*")
        inline, managed, _ = role_policies(parameters)
        last = granted(list(managed.values()), "AllowedRepositories")
        refused = [r for r in last if not r.startswith("arn:")]
        self.assertEqual(len(refused), 1, "IAM refuses the stack with this resource, which says why")
        self.assertIn("Repositories has more than 192 entries", refused[0])
        self.assertIn("patterns such as team/*", refused[0])

    def test_the_generated_block_is_what_the_script_writes(self):
        check = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "iam_chunks.py"), "--check"],
                               capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)


if __name__ == "__main__":
    unittest.main()


def rule_holds(node, parameters):
    """CloudFormation's rule functions, over CommaDelimitedList values."""
    if isinstance(node, dict) and len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            return parameters[arg]
        if key == "Fn::Not":
            return not rule_holds(arg[0], parameters)
        if key == "Fn::Contains":
            return rule_holds(arg[1], parameters) in rule_holds(arg[0], parameters)
        if key == "Fn::EachMemberEquals":
            return all(v == rule_holds(arg[1], parameters) for v in rule_holds(arg[0], parameters))
        raise AssertionError(f"no rule function {key} here")
    return node


class TheTemplateRefusesWhatWouldGrantNothing(unittest.TestCase):
    def refusals(self, **given):
        template, _ = decode(os.path.join(ROOT, "template.yaml"))
        parameters = {}
        for name, spec in template["Parameters"].items():
            if spec["Type"] == "CommaDelimitedList":
                parameters[name] = given.get(name, spec.get("Default", "")).split(",")
                pattern = spec.get("AllowedPattern")
                for value in parameters[name] if pattern else []:
                    if not re.fullmatch(pattern, value):
                        return [f"{name}: {spec['ConstraintDescription']}"]
        out = []
        for rule in template["Rules"].values():
            if "RuleCondition" in rule and not rule_holds(rule["RuleCondition"], parameters):
                continue
            out += [a["AssertDescription"] for a in rule["Assertions"] if not rule_holds(a["Assert"], parameters)]
        return out

    def test_empty_entries_are_refused_with_a_message_naming_the_parameter(self):
        self.assertEqual(self.refusals(), [], "the defaults deploy")
        self.assertEqual(self.refusals(Repositories="app,team/*", PromotionTargets="prod/*"), [])
        for given, parameter in [({"Repositories": "app,"}, "Repositories"), ({"Repositories": "app,,team/*"}, "Repositories"),
                                 ({"Repositories": ""}, "Repositories"), ({"PromotionTargets": "prod/*,"}, "PromotionTargets"),
                                 ({"PromotionTargets": ",prod/*"}, "PromotionTargets")]:
            refused = self.refusals(**given)
            self.assertEqual(len(refused), 1, given)
            self.assertTrue(refused[0].startswith(f"{parameter} has an empty entry"), refused)

    def test_entries_are_repository_names_or_patterns(self):
        self.assertEqual(self.refusals(Repositories="team/api-1.x_y,prod/*"), [])
        for bad in ["App", "a b", "a|b", "a!b"]:
            self.assertTrue(self.refusals(Repositories=bad)[0].startswith("Repositories: each entry is a repository name"), bad)


# The parameter combinations that change the role (and with it what cfn-lint checks).
LINTED = {
    "defaults": {},
    "queue": {"Delivery": "queue"},
    "every-feature": dict(EVERY_FEATURE, Repositories="app,team/*", PromotionTargets="prod/*,release/*"),
    "narrow-with-targets": {"Repositories": "team/api", "PromotionTargets": "prod/api,staging/api,release/*"},
}


def write_transformed(directory, combinations=LINTED, edit=None):
    """Each combination's transformed template as JSON, its values as the parameters' defaults."""
    paths = []
    for name, parameters in combinations.items():
        template = transformed(dict(parameters))
        for key, value in parameters.items():
            template["Parameters"][key]["Default"] = value
        if edit:
            edit(template)
        path = os.path.join(directory, f"{name}.json")
        with open(path, "w") as f:
            json.dump(template, f, indent=1)
        paths.append(path)
    return paths


def cfn_lint(paths):
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "cfn-lint"), *paths],
                          capture_output=True, text=True, timeout=600)


class CfnLintChecksWhatDeploys(unittest.TestCase):
    """cfn-lint skips IAM actions in templates with the Serverless transform (aws/serverless-application-model#3633):
    so it lints what SAM makes of the template, for every combination that changes the role."""

    def test_the_transformed_template_passes_cfn_lint_iam_checks_included(self):
        import tempfile
        with tempfile.TemporaryDirectory() as directory:
            lint = cfn_lint(write_transformed(directory))
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)

    def test_a_misspelt_action_fails_it(self):
        import tempfile

        def misspell(template):
            template["Resources"]["RepositoriesPolicy0"]["Properties"]["PolicyDocument"]["Statement"][0]["Action"].append(
                "ecr:NoSuchAction")
        with tempfile.TemporaryDirectory() as directory:
            lint = cfn_lint(write_transformed(directory, {"defaults": {}}, misspell))
        self.assertNotEqual(lint.returncode, 0)
        self.assertIn("W3037 'nosuchaction' is not one of", lint.stdout)

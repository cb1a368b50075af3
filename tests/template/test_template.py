"""template.yaml checked against the code, and its event pattern run through a real matcher.

Run by ./scripts/test:  .venv/bin/python -m unittest discover -s tests/template -v
ECR_RETAG_CLI names the command line binary (for checking the template's default rule set).
"""

import json
import os
import re
import subprocess
import unittest

import boto3
from cfnlint.decode import decode
from moto import mock_aws

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012",
          "AWS::StackName": "retag", "AWS::NoValue": None}


def load_template():
    template, problems = decode(os.path.join(ROOT, "template.yaml"))
    assert not problems, problems
    return template


class Resolver:
    """Evaluates the intrinsic functions the template uses, for given parameter values."""

    def __init__(self, template, **overrides):
        self.template = template
        self.params = {}
        for name, spec in template["Parameters"].items():
            value = overrides.get(name, spec.get("Default"))
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = [v.strip() for v in value.split(",")]
            self.params[name] = value
        self.conditions = {}
        for name, c in template.get("Conditions", {}).items():  # in order: later ones refer to earlier ones
            self.conditions[name] = self.resolve(c)

    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not None}
        (key, arg), = node.items()
        if key == "Ref":
            if arg in PSEUDO:
                return PSEUDO[arg]
            if arg in self.params:
                return self.params[arg]
            return f"<{arg}>"
        if key == "Fn::GetAtt":
            target = arg if isinstance(arg, list) else arg.split(".", 1)
            return f"<{target[0]}.{target[1]}>"
        if key == "Fn::Join":
            # CloudFormation takes no function in a Join's delimiter; a resolver that did would hide it.
            assert isinstance(arg[0], str), f"a Join's delimiter must be a string, got {arg[0]}"
            return arg[0].join(self.resolve(arg[1]))
        if key == "Fn::Split":
            # CloudFormation takes no function as the delimiter either.
            assert isinstance(arg[0], str), f"a Split's delimiter must be a string, got {arg[0]}"
            return self.resolve(arg[1]).split(arg[0])
        if key == "Fn::Select":
            # Past the end CloudFormation fails the stack; so does this (IndexError).
            return self.resolve(arg[1])[int(self.resolve(arg[0]))]
        if key == "Fn::FindInMap":
            top, second, third = (self.resolve(a) for a in arg)
            return self.template["Mappings"][top][second][third]
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            def sub(m):
                name = m.group(1)
                if name in variables:
                    return variables[name]
                if name in PSEUDO:
                    return PSEUDO[name]
                value = self.params.get(name, f"<{name}>")
                return str(value) if isinstance(value, (str, int)) else f"<{name}>"
            return re.sub(r"\$\{([^}]+)\}", sub, text)
        if key == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.conditions[name] else no)
        if key == "Fn::Equals":
            a, b = self.resolve(arg[0]), self.resolve(arg[1])
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Condition":
            return self.conditions[arg]
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg))
        if key.startswith("Fn::"):
            raise AssertionError(f"the test resolver does not know {key}")
        return {key: self.resolve(arg)}

    def resource(self, logical_id):
        return self.resolve(self.template["Resources"][logical_id])

    def statements(self):
        """The function's policy statements: its inline ones, and those of the managed policies of
        the template it is given (a Ref, "<Name>" here), as CloudFormation would attach them."""
        out = []
        for policy in self.resource("RetagFunction")["Properties"]["Policies"]:
            if isinstance(policy, str) and policy.startswith("<"):
                policy = self.resource(policy[1:-1])["Properties"]["PolicyDocument"]
            out += policy["Statement"]
        return out


# ECR operations IAM authorises under another action (the ECR API reference: ListImageReferrers
# needs ecr:BatchGetImage). One place, should that change.
AUTHORISED_AS = {"ecr:ListImageReferrers": "ecr:BatchGetImage"}


# The registry settings only `ecr-retag doctor` reads: never the function, whose role lacks them.
DOCTOR_ONLY = "setup.rs"
# Promotion into another repository ("to"): the calls only a promotion makes, granted only with
# PromotionTargets set.
PROMOTION_ONLY = "blobs.rs"
# What the registry API's blob mount is assumed to need (unverified; this is the one place to change
# it, with the template's MountFromSources and PromoteIntoTargets): the source's layer download and
# the target's layer upload calls, the same actions "copy_blobs" calls through the ECR API.
MOUNT_ASSUMED = {"ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"}


def ecr_operations_called_by_the_code(only=None):
    """The ECR operations src/registry/ecr.rs and its submodules call, as IAM actions:
    `.batch_get_image()` is ecr:BatchGetImage. The function's, or those of one file the function
    does not use (DOCTOR_ONLY, PROMOTION_ONLY)."""
    module = os.path.join(ROOT, "src/registry/ecr")
    if only:
        paths = [os.path.join(module, only)]
    else:
        paths = [os.path.join(ROOT, "src/registry/ecr.rs")]
        paths += [os.path.join(module, name) for name in sorted(os.listdir(module))
                  if name.endswith(".rs") and name not in (DOCTOR_ONLY, PROMOTION_ONLY)]
    source = ""
    for path in paths:
        with open(path) as f:
            source += f.read()
    calls = set(re.findall(r"\.client\s*\.\s*([a-z_]+)\(\)", source)) - {"config"}  # config() is no call to ECR
    actions = {"ecr:" + "".join(part.capitalize() for part in call.split("_")) for call in calls}
    return {AUTHORISED_AS.get(a, a) for a in actions}


def event_pattern(resolver):
    pattern = resolver.resource("PushRule")["Properties"]["EventPattern"]
    return json.loads(pattern) if isinstance(pattern, str) else pattern


def sample(name):
    with open(os.path.join(ROOT, "events", name)) as f:
        return json.load(f)


class TemplateMatchesTheCode(unittest.TestCase):
    def setUp(self):
        self.template = load_template()

    def granted(self, **parameters):
        statements = Resolver(self.template, **parameters).statements()
        self.assertTrue(all(s["Effect"] == "Allow" for s in statements))
        return {a for s in statements for a in s["Action"] if a.startswith("ecr:")}

    def test_the_policy_grants_exactly_the_ecr_calls_the_code_makes(self):
        called = ecr_operations_called_by_the_code()
        self.assertEqual(called, {"ecr:BatchGetImage", "ecr:PutImage", "ecr:DescribeImages", "ecr:ListTagsForResource",
                                  "ecr:DescribeRepositories", "ecr:BatchDeleteImage", "ecr:UpdateImageStorageClass",
                                  "ecr:DescribeImageSigningStatus"})
        self.assertEqual(self.granted(RemoveSourceTags="true", RestoreArchivedImages="true", SignatureEvents="managed"), called)
        optional = {"ecr:BatchDeleteImage", "ecr:UpdateImageStorageClass", "ecr:DescribeImageSigningStatus"}
        self.assertEqual(self.granted(), called - optional, "deleting, restoring and managed signing only when a rule needs it")
        self.assertEqual(self.granted(SignatureEvents="pushed"), called - optional, "referrers need no more than BatchGetImage")
        env = Resolver(self.template, RemoveSourceTags="true", ScanEvents="true", RestoreArchivedImages="true",
                       SignatureEvents="managed").resource("RetagFunction")["Properties"]["Environment"]["Variables"]
        self.assertEqual((env["RETAG_REMOVE_SOURCE"], env["RETAG_SCAN_EVENTS"], env["RETAG_RESTORE_ARCHIVED"],
                          env["RETAG_SIGNATURE_EVENTS"], env["RETAG_MANAGED_SIGNING"]), ("true",) * 5)
        env = Resolver(self.template, SignatureEvents="pushed").resource("RetagFunction")["Properties"]["Environment"]["Variables"]
        self.assertEqual((env["RETAG_SIGNATURE_EVENTS"], env["RETAG_MANAGED_SIGNING"]), ("true", "false"))

    def test_the_doctors_policy_grants_its_reads_and_nothing_that_writes(self):
        with open(os.path.join(ROOT, "examples/doctor-policy.json")) as f:
            policy = json.load(f)
        granted = {a for s in policy["Statement"] for a in s["Action"]}
        settings = ecr_operations_called_by_the_code(only=DOCTOR_ONLY)
        self.assertEqual(settings, {"ecr:GetRegistryScanningConfiguration", "ecr:BatchGetRepositoryScanningConfiguration",
                                    "ecr:GetLifecyclePolicy", "ecr:DescribePullThroughCacheRules"})
        # Besides its own, the listings and the repository's settings the function reads too.
        # Besides, whether blobs can be mounted, for rules that promote (a promotion's read, in blobs.rs).
        # And Amazon Inspector's rescan window, its one call to another service.
        with open(os.path.join(ROOT, "src/registry/ecr/setup.rs")) as f:
            inspector = {"inspector2:GetConfiguration"} if "inspector.get_configuration()" in f.read() else set()
        self.assertEqual(granted, settings | inspector | {"ecr:DescribeRepositories", "ecr:DescribeImages", "ecr:ListTagsForResource",
                                                          "ecr:GetAccountSetting"})
        self.assertEqual(inspector, {"inspector2:GetConfiguration"})
        self.assertIn("ecr:GetAccountSetting", ecr_operations_called_by_the_code(only=PROMOTION_ONLY))
        self.assertFalse(settings & self.granted(RemoveSourceTags="true", RestoreArchivedImages="true", SignatureEvents="managed"),
                         "the function's role never gets the doctor's reads")

    def statements(self, **parameters):
        return {s["Sid"]: s for s in Resolver(self.template, **parameters).statements()}

    def test_promotion_grows_the_policy_by_exactly_its_calls_and_only_when_on(self):
        promotion = ecr_operations_called_by_the_code(only=PROMOTION_ONLY)
        self.assertEqual(promotion, {"ecr:GetAuthorizationToken", "ecr:GetAccountSetting", "ecr:BatchCheckLayerAvailability",
                                     "ecr:DescribeRepositories", "ecr:BatchGetImage",
                                     # "copy_blobs": true streams through the layer calls.
                                     "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
                                     "ecr:CompleteLayerUpload"})
        off, on = self.granted(), self.granted(PromotionTargets="prod/*")
        self.assertFalse({"ecr:GetAuthorizationToken", "ecr:GetAccountSetting", "ecr:BatchCheckLayerAvailability"} & off,
                         "nothing of a promotion's without PromotionTargets")
        self.assertEqual(on - off, (promotion | MOUNT_ASSUMED) - off)
        # Where: the sources' layers are read, the targets alone are written, and only the two
        # account-wide actions are granted on "*".
        sids = self.statements(PromotionTargets="prod/*,release/*", Repositories="dev/*")
        target = sids["PromoteIntoTargets"]
        self.assertEqual(target["Resource"], ["arn:*:ecr:*:*:repository/prod/*", "arn:*:ecr:*:*:repository/release/*"])
        called = ecr_operations_called_by_the_code()
        self.assertEqual(set(target["Action"]) - MOUNT_ASSUMED,
                         {"ecr:BatchGetImage", "ecr:PutImage", "ecr:DescribeImages", "ecr:BatchCheckLayerAvailability"})
        self.assertLessEqual(set(target["Action"]) - MOUNT_ASSUMED, called | promotion)
        # The sources' layers: one more action in the allowed repositories' statement, only with promotion.
        sources = sids["AllowedRepositories"]
        self.assertEqual(sources["Resource"], ["arn:*:ecr:*:*:repository/dev/*"])
        self.assertIn("ecr:GetDownloadUrlForLayer", sources["Action"])
        self.assertNotIn("ecr:GetDownloadUrlForLayer", self.statements(Repositories="dev/*")["AllowedRepositories"]["Action"])
        self.assertEqual(sids["RegistryTokenAndSetting"]["Resource"], "*")
        self.assertEqual(set(sids["RegistryTokenAndSetting"]["Action"]), {"ecr:GetAuthorizationToken", "ecr:GetAccountSetting"})
        for s in sids.values():
            if s["Sid"] != "RegistryTokenAndSetting":
                self.assertNotEqual(s["Resource"], "*", s["Sid"])
        env = lambda **p: Resolver(self.template, **p).resource("RetagFunction")["Properties"]["Environment"]["Variables"]
        self.assertEqual((env()["RETAG_PROMOTION"], env(PromotionTargets="prod/*")["RETAG_PROMOTION"]), ("false", "true"))

    def test_records_grow_the_policy_by_exactly_their_calls_and_only_when_on(self):
        # What attaching a record calls through the registry port (src/apply/record), as IAM actions.
        # A sweep's record also reads its subject and the evidence as it stands (the signature look is the
        # gate's own calls: ListImageReferrers, cosign's tag, and DescribeImageSigningStatus where the gate asks).
        port = {"referrers_of_type": {"ecr:BatchGetImage"}, "missing": {"ecr:BatchCheckLayerAvailability"},
                "upload_blob": {"ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"},
                "put_manifest": {"ecr:PutImage"}, "read": {"ecr:BatchGetImage"}, "describe": {"ecr:DescribeImages"},
                "signatures": {"ecr:BatchGetImage"}}
        with open(os.path.join(ROOT, "src/apply/record/mod.rs")) as f:
            used = set(re.findall(r"registry\s*\.\s*([a-z_]+)\(", f.read()))
        self.assertEqual(used, set(port), "a port call this test does not know: map it to its ECR actions")
        needed = set().union(*port.values())
        # The calls of the ECR adapter, the function's and those it shares with promotion (blobs.rs).
        self.assertLessEqual(needed, ecr_operations_called_by_the_code() | ecr_operations_called_by_the_code(only=PROMOTION_ONLY))
        key = "arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
        off, on = self.granted(), self.granted(RecordSigningKey=key)
        self.assertEqual(on - off, needed - off, "exactly the calls a record adds")
        self.assertLessEqual(needed, on)
        sids = self.statements(RecordSigningKey=key, Repositories="dev/*")
        # Where records are attached: the allowed repositories (and promotion targets, whose statement has them already).
        self.assertLessEqual(needed, set(sids["AllowedRepositories"]["Action"]))
        self.assertNotIn("ecr:InitiateLayerUpload", self.statements(Repositories="dev/*")["AllowedRepositories"]["Action"])
        # KMS: Sign, on the one key, and only with records on; GetPublicKey is the command line's (why).
        with open(os.path.join(ROOT, "src/signer/kms.rs")) as f:
            kms_calls = set(re.findall(r"\.client\(\)\s*\.\s*([a-z_]+)\(\)", f.read()))
        self.assertEqual(kms_calls, {"sign", "get_public_key"})
        sign = sids["SignPromotionRecords"]
        self.assertEqual((sign["Action"], sign["Resource"]), (["kms:Sign"], [key]))
        kms = {a for s in Resolver(self.template, RecordSigningKey=key).statements() for a in s["Action"] if a.startswith("kms:")}
        self.assertEqual(kms, {"kms:Sign"})
        self.assertNotIn("SignPromotionRecords", self.statements())
        env = lambda **p: Resolver(self.template, **p).resource("RetagFunction")["Properties"]["Environment"]["Variables"]
        self.assertEqual((env()["RETAG_RECORD_KEY"], env(RecordSigningKey=key)["RETAG_RECORD_KEY"]), ("", key))

    @mock_aws
    def test_the_replication_examples_are_what_ecr_takes(self):
        # The README's commands, through botocore's request validation and moto's ECR.
        with open(os.path.join(ROOT, "examples/replication.json")) as f:
            replication = json.load(f)
        with open(os.path.join(ROOT, "examples/replication-registry-policy.json")) as f:
            policy = f.read()
        ecr = boto3.client("ecr", region_name="eu-west-1")
        ecr.put_replication_configuration(replicationConfiguration=replication)
        rules = ecr.describe_registry()["replicationConfiguration"]["rules"]
        self.assertEqual(rules[0]["repositoryFilters"], [{"filter": "prod/", "filterType": "PREFIX_MATCH"}],
                         "the prefix the promotion writes under")
        ecr.put_registry_policy(policyText=policy)
        statement = json.loads(policy)["Statement"][0]
        self.assertEqual(set(statement["Action"]), {"ecr:CreateRepository", "ecr:ReplicateImage"})
        self.assertTrue(statement["Resource"].endswith(":repository/prod/*"))

    def test_scan_events_are_routed_only_when_asked_for(self):
        conditions = self.template["Resources"]
        self.assertEqual(conditions["ScanRule"]["Condition"], "RouteBasicScans")
        self.assertEqual(conditions["ScanRulePermission"]["Condition"], "ScanRulePermitted")
        self.assertFalse(Resolver(self.template).conditions["RouteScanEvents"])
        r = Resolver(self.template, ScanEvents="true", Repositories="app,team/*")
        self.assertTrue(r.conditions["RouteScanEvents"])
        pattern = json.loads(r.resource("ScanRule")["Properties"]["EventPattern"])
        self.assertEqual(pattern["detail-type"], ["ECR Image Scan"])
        self.assertEqual(pattern["detail"]["scan-status"], ["COMPLETE"])
        self.assertEqual(pattern["detail"]["repository-name"], [{"wildcard": "app"}, {"wildcard": "team/*"}])
        statement = r.resource("FailureQueuePolicy")["Properties"]["PolicyDocument"]["Statement"][0]
        self.assertEqual(statement["Condition"]["ArnEquals"]["aws:SourceArn"], ["<PushRule.Arn>", "<ScanRule.Arn>"])
        self.assertEqual(r.resource("ScanRulePermission")["Properties"]["SourceArn"], "<ScanRule.Arn>")

    def test_the_policy_is_limited_to_the_allowed_repositories(self):
        own = "arn:aws:ecr:eu-west-1:123456789012:repository/"
        named = "arn:*:ecr:*:*:repository/"
        scope = {"StringEquals": {"aws:ResourceAccount": "123456789012", "aws:RequestedRegion": "eu-west-1"}}
        for repositories, expected in [("*", [named + "*"]), ("app,team/*", [named + "app", named + "team/*"])]:
            statements = Resolver(self.template, Repositories=repositories, RemoveSourceTags="true",
                                  RestoreArchivedImages="true").statements()
            for s in statements:
                if not s["Action"][0].startswith("ecr:"):
                    continue
                if s["Action"] == ["ecr:DescribeRepositories"]:
                    # Listing is authorised against repository/*; it reads names, never images.
                    self.assertEqual(s["Resource"], [own + "*"])
                else:
                    self.assertEqual(s["Resource"], expected, (repositories, s["Sid"]))
                    self.assertEqual(s["Condition"], scope, "this account and region only")

    def test_no_join_takes_a_function_as_its_delimiter(self):
        """CloudFormation refuses it at deploy time; cfn-lint does not look inside SAM policies."""
        def joins(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "Fn::Join":
                        yield value
                    yield from joins(value)
            elif isinstance(node, list):
                for item in node:
                    yield from joins(item)
        found = list(joins(self.template))
        self.assertGreater(len(found), 5)
        for join in found:
            self.assertIsInstance(join[0], str, join)

    def test_a_scheduled_sweep_is_off_by_default_and_covers_the_allowed_repositories(self):
        self.assertFalse(Resolver(self.template).conditions["ScheduleReconcile"])
        for name in ["ReconcileRule", "ReconcileRulePermission"]:
            self.assertEqual(self.template["Resources"][name]["Condition"], "ScheduleReconcile")
        r = Resolver(self.template, ReconcileSchedule="rate(6 hours)", Repositories="app,team/*", ReconcileMaxWrites="50")
        rule = r.resource("ReconcileRule")["Properties"]
        self.assertEqual(rule["ScheduleExpression"], "rate(6 hours)")
        target = rule["Targets"][0]
        # IAM's team/* also matches team/a/b; the sweep's glob for that is team/**.
        self.assertEqual(json.loads(target["Input"]), {"reconcile": {"repositories": ["app", "team/**"], "max_writes": 50}})
        self.assertEqual(json.loads(Resolver(self.template, ReconcileSchedule="rate(1 day)").resource("ReconcileRule")[
            "Properties"]["Targets"][0]["Input"]), {"reconcile": {"repositories": ["**"], "max_writes": 200}})
        self.assertEqual((target["Arn"], target["DeadLetterConfig"]["Arn"]), ("<RetagFunction.Arn>", "<FailureQueue.Arn>"))
        statement = r.resource("FailureQueuePolicy")["Properties"]["PolicyDocument"]["Statement"][0]
        self.assertIn("<ReconcileRule.Arn>", statement["Condition"]["ArnEquals"]["aws:SourceArn"])
        self.assertEqual(r.resource("ReconcileRulePermission")["Properties"]["SourceArn"], "<ReconcileRule.Arn>")
        with open(os.path.join(ROOT, "events", "reconcile.json")) as f:
            self.assertEqual(set(json.load(f)["reconcile"]), {"repositories", "max_writes"}, "the sample has the schedule's shape")

    def test_queue_delivery_batches_events_and_reports_failed_messages_only(self):
        direct = Resolver(self.template)
        self.assertFalse(direct.conditions["UseQueue"])
        self.assertEqual(direct.resource("PushRule")["Properties"]["Targets"][0]["Arn"], "<RetagFunction.Arn>")
        r = Resolver(self.template, Delivery="queue", ScanEvents="true", QueueBatchSize="25", QueueBatchingWindowSeconds="2",
                     QueueMaximumConcurrency="3", QueueMaxReceiveCount="4")
        for name in ["EventQueue", "EventQueuePolicy", "EventQueueMapping"]:
            self.assertEqual(self.template["Resources"][name]["Condition"], "UseQueue")
        for rule in ["PushRule", "ScanRule"]:
            self.assertEqual(r.resource(rule)["Properties"]["Targets"][0]["Arn"], "<EventQueue.Arn>", rule)
        self.assertFalse(r.conditions["InvokeDirectly"] or r.conditions["ScanRulePermitted"], "no direct invoke permission")
        mapping = r.resource("EventQueueMapping")["Properties"]
        self.assertEqual(mapping["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertEqual((mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"], mapping["ScalingConfig"]),
                         ("25", "2", {"MaximumConcurrency": "3"}))
        queue = r.resource("EventQueue")["Properties"]
        self.assertEqual(queue["RedrivePolicy"], {"deadLetterTargetArn": "<FailureQueue.Arn>", "maxReceiveCount": "4"})
        function = r.resource("RetagFunction")["Properties"]
        self.assertGreaterEqual(queue["VisibilityTimeout"], 6 * function["Timeout"])
        sqs = [s for s in r.statements() if s["Sid"] == "ReadEventQueue"]
        self.assertEqual(sqs[0]["Resource"], ["<EventQueue.Arn>"])
        self.assertIn("sqs:DeleteMessage", sqs[0]["Action"])
        self.assertEqual([s["Sid"] for s in direct.statements()],
                         ["ListRepositories", "SendToFailureQueue", "AllowedRepositories"], "no queue access with direct delivery")
        self.assertNotIn("sqs:ChangeMessageVisibility", sqs[0]["Action"], "nothing calls it; the event source mapping needs none")
        statement = r.resource("EventQueuePolicy")["Properties"]["PolicyDocument"]["Statement"][0]
        self.assertEqual(statement["Condition"]["ArnEquals"]["aws:SourceArn"], ["<PushRule.Arn>", "<ScanRule.Arn>"])

    def test_with_queue_delivery_the_scheduled_sweep_fans_out_through_the_event_queue(self):
        r = Resolver(self.template, Delivery="queue", ReconcileSchedule="rate(1 day)", Repositories="team/*", ReconcileMaxWrites="300")
        target = r.resource("ReconcileRule")["Properties"]["Targets"][0]
        self.assertEqual(target["Arn"], "<RetagFunction.Arn>", "the fan-out itself runs in the function")
        self.assertEqual(json.loads(target["Input"]), {"reconcile": {"repositories": ["team/**"], "max_writes": 300, "fan_out": True}})
        function = r.resource("RetagFunction")["Properties"]
        self.assertEqual(function["Environment"]["Variables"]["RETAG_SWEEP_QUEUE_URL"], "<EventQueue>")
        self.assertEqual(str(function["Environment"]["Variables"]["RETAG_SWEEP_WRITES_PER_SECOND"]), "2", "paced by default")
        paced = Resolver(self.template, Delivery="queue", SweepWritesPerSecond="0").resource("RetagFunction")["Properties"]
        self.assertEqual(paced["Environment"]["Variables"]["RETAG_SWEEP_WRITES_PER_SECOND"], "0")
        sqs = [s for s in r.statements() if s["Sid"] == "ReadEventQueue"]
        self.assertIn("sqs:SendMessage", sqs[0]["Action"], "the sweep messages and their continuations")
        direct = Resolver(self.template, ReconcileSchedule="rate(1 day)")
        self.assertEqual(direct.resource("RetagFunction")["Properties"]["Environment"]["Variables"]["RETAG_SWEEP_QUEUE_URL"], "")
        self.assertNotIn("fan_out", json.loads(direct.resource("ReconcileRule")["Properties"]["Targets"][0]["Input"])["reconcile"])

    def test_the_event_pattern_filters_on_detail_and_never_on_resources(self):
        for repositories in ["*", "app,team/*"]:
            pattern = event_pattern(Resolver(self.template, Repositories=repositories))
            self.assertEqual(pattern["source"], ["aws.ecr"])
            self.assertEqual(pattern["detail-type"], ["ECR Image Action"])
            self.assertEqual(pattern["detail"]["action-type"], ["PUSH"])
            self.assertEqual(pattern["detail"]["result"], ["SUCCESS"])
            self.assertNotIn("resources", pattern)
        pattern = event_pattern(Resolver(self.template, Repositories="app,team/*"))
        self.assertEqual(pattern["detail"]["repository-name"], [{"wildcard": "app"}, {"wildcard": "team/*"}])
        self.assertNotIn("repository-name", event_pattern(Resolver(self.template))["detail"])

    def test_failures_go_to_the_failure_queue(self):
        r = Resolver(self.template)
        self.assertEqual(self.template["Resources"]["FailureQueue"]["Type"], "AWS::SQS::Queue")
        invoke = r.resource("RetagFunctionEventInvokeConfig")["Properties"]
        self.assertEqual((invoke["FunctionName"], invoke["Qualifier"]), ("<RetagFunction>", "$LATEST"))
        self.assertEqual(invoke["DestinationConfig"]["OnFailure"], {"Destination": "<FailureQueue.Arn>"})
        sends = [s for s in r.statements() if s["Sid"] == "SendToFailureQueue"]
        self.assertEqual((sends[0]["Action"], sends[0]["Resource"]), (["sqs:SendMessage"], ["<FailureQueue.Arn>"]))
        self.assertLessEqual(int(invoke["MaximumRetryAttempts"]), 2)
        self.assertLessEqual(int(invoke["MaximumEventAgeInSeconds"]), 21600)
        target = r.resource("PushRule")["Properties"]["Targets"][0]
        self.assertEqual(target["Arn"], "<RetagFunction.Arn>")
        self.assertEqual(target["DeadLetterConfig"]["Arn"], "<FailureQueue.Arn>")
        statement = r.resource("FailureQueuePolicy")["Properties"]["PolicyDocument"]["Statement"][0]
        self.assertEqual(statement["Principal"], {"Service": "events.amazonaws.com"})
        self.assertEqual(statement["Condition"]["ArnEquals"]["aws:SourceArn"], ["<PushRule.Arn>"])
        permission = r.resource("PushRulePermission")["Properties"]
        self.assertEqual(permission["SourceArn"], "<PushRule.Arn>")

    def test_the_timeout_covers_the_worst_case_of_the_sdk_settings(self):
        with open(os.path.join(ROOT, "src/registry/mod.rs")) as f:
            operation = int(re.search(r"OPERATION_TIMEOUT: Duration = Duration::from_secs\((\d+)\)", f.read()).group(1))
        function = Resolver(self.template).resource("RetagFunction")["Properties"]
        # Read, writes, re-read of immutable tags: three operations in sequence at most.
        self.assertGreaterEqual(function["Timeout"], 3 * operation + 3)
        self.assertLessEqual(function["Timeout"], 60, "short: a hung invocation should not hold a slot for long")
        self.assertEqual((function["Runtime"], function["Architectures"], function["MemorySize"]),
                         ("provided.al2023", ["arm64"], 128))
        self.assertEqual(function["LoggingConfig"]["LogFormat"], "JSON")

    def test_cargo_lambda_deploys_the_same_function(self):
        import tomllib
        with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
            lambda_metadata = tomllib.load(f)["package"]["metadata"]["lambda"]
        deploy = lambda_metadata["deploy"]
        function = Resolver(self.template).resource("RetagFunction")["Properties"]
        self.assertEqual((deploy["memory"], deploy["timeout"]), (function["MemorySize"], function["Timeout"]))
        variables = function["Environment"]["Variables"]
        self.assertNotIn("RETAG_RULES", variables, "the rules come from the file in the package")
        self.assertEqual(variables["RETAG_RULES_FILE"], "rules.json")
        self.assertEqual(deploy["env"]["RETAG_RULES_FILE"], "rules.json")
        self.assertEqual(deploy["include"], ["rules.json"], "deploy zips the binary with these files, not the build's")
        self.assertNotIn("include", lambda_metadata.get("build", {}), "a second rules.json in a built zip fails deploy")
        resource = Resolver(self.template).resource("RetagFunction")
        self.assertEqual((resource["Metadata"]["BuildMethod"], function["CodeUri"]), ("makefile", "."), "the Makefile packages rules.json")

    def test_the_rule_file_sam_packages_is_valid(self):
        # tests/deploy builds the packages; here, the file they carry by default.
        binary = os.environ.get("ECR_RETAG_CLI")
        if not binary:
            self.skipTest("ECR_RETAG_CLI is not set")
        run = subprocess.run([binary, "check-rules", os.path.join(ROOT, "rules.json")], capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)


@mock_aws
class ThePatternRoutesTheSamplesItShould(unittest.TestCase):
    """moto's EventBridge evaluates the rule's pattern and routes matches to an SQS queue."""

    def setUp(self):
        os.environ.update(AWS_DEFAULT_REGION="eu-west-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        self.template = load_template()

    def routed(self, repositories, events):
        pattern = event_pattern(Resolver(self.template, Repositories=repositories))
        return self.routed_by(pattern, repositories, events)

    def routed_by(self, pattern, key, events):
        events_client, sqs = boto3.client("events"), boto3.client("sqs")
        queue = sqs.create_queue(QueueName=f"q{abs(hash(key))}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        name = f"rule{abs(hash(key))}"
        events_client.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")
        events_client.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": queue_arn}])
        for label, event in events:
            events_client.put_events(Entries=[{
                "Source": event["source"], "DetailType": event["detail-type"],
                "Detail": json.dumps(dict(event["detail"], label=label)), "Resources": event["resources"],
            }])
        arrived = []
        while True:
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return sorted(arrived)
            arrived += [json.loads(m["Body"])["detail"]["label"] for m in got]

    def samples(self):
        names = ["push.json", "push-multi-arch-index.json", "push-main-build.json", "push-untagged-child.json",
                 "push-failure.json", "delete.json", "scan-complete.json", "inspector-scan.json", "push-signature.json"]
        events = [(n, sample(n)) for n in names]
        empty_tag = sample("push.json")
        empty_tag["detail"]["image-tag"] = ""
        return events + [("push-empty-tag", empty_tag)]

    def test_tagged_successful_pushes_match_and_nothing_else(self):
        self.assertEqual(
            self.routed("*", self.samples()),
            ["push-main-build.json", "push-multi-arch-index.json", "push.json"],
        )

    def test_enhanced_scans_route_inspectors_completed_scans_of_the_allowed_repositories(self):
        self.assertEqual(self.template["Resources"]["InspectorScanRule"]["Condition"], "RouteEnhancedScans")
        for value, basic, enhanced in [("none", False, False), ("false", False, False), ("true", True, False),
                                       ("basic", True, False), ("enhanced", False, True), ("both", True, True)]:
            r = Resolver(self.template, ScanEvents=value)
            self.assertEqual((r.conditions["RouteBasicScans"], r.conditions["RouteEnhancedScans"]), (basic, enhanced), value)
            env = r.resource("RetagFunction")["Properties"]["Environment"]["Variables"]
            self.assertEqual(env["RETAG_SCAN_EVENTS"], "true" if basic or enhanced else "false", value)
        scan = {"version": "0", "id": "1", "detail-type": "Inspector2 Scan", "source": "aws.inspector2", "account": "123456789012",
                "time": "2026-11-24T10:17:40Z", "region": "eu-west-1", "resources": [],
                "detail": {"scan-status": "INITIAL_SCAN_COMPLETE", "repository-name": "arn:aws:ecr:eu-west-1:123456789012:repository/team/api",
                           "finding-severity-counts": {"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "TOTAL": 0},
                           "image-digest": "sha256:" + "c" * 64, "image-tags": ["v1.4.2"]}}
        pending = json.loads(json.dumps(scan))
        pending["detail"]["scan-status"] = "PENDING_INITIAL_SCAN"
        elsewhere = json.loads(json.dumps(scan))
        elsewhere["detail"]["repository-name"] = "arn:aws:ecr:eu-west-1:123456789012:repository/other/api"
        events = [("scan", scan), ("pending", pending), ("elsewhere", elsewhere), ("basic", sample("scan-complete.json"))]
        for repositories, routed in [("*", ["elsewhere", "scan"]), ("app,team/*", ["scan"])]:
            rule = Resolver(self.template, ScanEvents="enhanced", Repositories=repositories).resource("InspectorScanRule")
            pattern = json.loads(json.dumps(rule["Properties"]["EventPattern"]))
            pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
            self.assertEqual(self.routed_by(pattern, "inspector" + repositories, events), routed, repositories)

    def test_the_scan_rule_routes_completed_scans_only(self):
        failed = sample("scan-complete.json")
        failed["detail"]["scan-status"] = "FAILED"
        events = self.samples() + [(n, sample(n)) for n in ["platform-scan-passed.json", "platform-scan-blocked.json"]]
        pattern = json.loads(json.dumps(Resolver(self.template, ScanEvents="true").resource("ScanRule")["Properties"]["EventPattern"]))
        self.assertEqual(
            self.routed_by(pattern, "scan", events + [("failed", failed)]),
            ["platform-scan-blocked.json", "platform-scan-passed.json", "scan-complete.json"],
        )

    def test_signature_pushes_route_untagged_signatures_only_and_only_when_asked_for(self):
        resources = self.template["Resources"]
        self.assertEqual((resources["SignatureRule"]["Condition"], resources["SignatureRulePermission"]["Condition"]),
                         ("RouteSignatures", "SignatureRulePermitted"))
        self.assertFalse(Resolver(self.template).conditions["RouteSignatures"])
        sigstore = sample("push-signature.json")
        sigstore["detail"]["artifact-media-type"] = "application/vnd.dev.sigstore.bundle.v0.3+json"
        maybe = sample("push-signature.json")
        maybe["detail"]["artifact-media-type"] = "application/vnd.oci.empty.v1+json"
        tagged = sample("push-signature.json")
        tagged["detail"]["image-tag"] = "sha256-" + "c" * 64
        empty_tag = sample("push-signature.json")
        empty_tag["detail"]["image-tag"] = ""
        sbom = sample("push-signature.json")
        sbom["detail"]["artifact-media-type"] = "application/spdx+json"
        elsewhere = sample("push-signature.json")
        elsewhere["detail"]["repository-name"] = "other/api"
        events = self.samples() + [("sigstore", sigstore), ("maybe", maybe), ("tagged", tagged), ("empty-tag", empty_tag),
                                   ("sbom", sbom), ("elsewhere", elsewhere)]
        for repositories, routed in [("*", ["elsewhere", "empty-tag", "maybe", "push-signature.json", "sigstore"]),
                                     ("app,team/*", ["empty-tag", "maybe", "push-signature.json", "sigstore"])]:
            r = Resolver(self.template, SignatureEvents="pushed", Repositories=repositories)
            pattern = r.resource("SignatureRule")["Properties"]["EventPattern"]
            pattern = json.loads(pattern) if isinstance(pattern, str) else json.loads(json.dumps(pattern))
            self.assertEqual(self.routed_by(pattern, "signature" + repositories, events), routed, repositories)
            statement = r.resource("FailureQueuePolicy")["Properties"]["PolicyDocument"]["Statement"][0]
            self.assertIn("<SignatureRule.Arn>", statement["Condition"]["ArnEquals"]["aws:SourceArn"])
        self.assertEqual(self.routed("*", [("tagged", tagged)]), ["tagged"], "a tagged signature comes through the push rule, once")

    def test_named_repositories_narrow_the_rule(self):
        other = sample("push.json")
        other["detail"]["repository-name"] = "other/api"
        nested = sample("push.json")
        nested["detail"]["repository-name"] = "app"
        self.assertEqual(
            self.routed("app,team/*", self.samples() + [("other", other), ("app", nested)]),
            ["app", "push-main-build.json", "push-multi-arch-index.json", "push.json"],
        )


if __name__ == "__main__":
    unittest.main()

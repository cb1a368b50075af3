"""Registry settings that decide whether promotion rules can work, where moto is not ECR:
pull-through cache rules (moto has none), the effective scanning configuration of a
repository (moto matches filters by substring and never reports scan on push), and
lifecycle policies with the archive storage class and pull-time counts (moto refuses them)."""

import re
import time

import moto.ecr.policy_validation as lifecycle_validation
from moto.core.exceptions import JsonRESTError
from moto.ecr.exceptions import InvalidParameterException

from .common import page, wildcard
from .state import STATE

PREFIX = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")


class PullThroughCacheRuleAlreadyExistsException(JsonRESTError):
    def __init__(self, prefix):
        super().__init__("PullThroughCacheRuleAlreadyExistsException",
                         f"The pull through cache rule with prefix '{prefix}' already exists in the registry")


class PullThroughCacheRuleNotFoundException(JsonRESTError):
    def __init__(self, prefix):
        super().__init__("PullThroughCacheRuleNotFoundException",
                         f"The pull through cache rule with prefix '{prefix}' does not exist in the registry")


def create_pull_through_cache_rule_response(self):
    """CreatePullThroughCacheRule: a prefix (2 to 30 characters, repository-name syntax) per
    upstream; a second rule with the same prefix is refused."""
    from moto.core.responses import ActionResult
    prefix = self._get_param("ecrRepositoryPrefix") or ""
    if not (2 <= len(prefix) <= 30 and PREFIX.match(prefix)):
        raise InvalidParameterException(f"Invalid parameter at 'ecrRepositoryPrefix' failed to satisfy constraint: {prefix!r}")
    with STATE.lock:
        if any(r["ecrRepositoryPrefix"] == prefix for r in STATE.pull_through):
            raise PullThroughCacheRuleAlreadyExistsException(prefix)
        rule = {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": self._get_param("upstreamRegistryUrl"),
                "createdAt": time.time(), "registryId": self.ecr_backend.account_id}
        STATE.pull_through.append(rule)
        return ActionResult(rule)


def describe_pull_through_cache_rules_response(self):
    """DescribePullThroughCacheRules: every rule, or those named (an unknown one is an error),
    a page at a time (maxResults 1 to 1,000, default 100)."""
    from moto.core.responses import ActionResult
    named = self._get_param("ecrRepositoryPrefixes")
    with STATE.lock:
        rules = sorted(STATE.pull_through, key=lambda r: r["ecrRepositoryPrefix"])
        if named:
            missing = [p for p in named if not any(r["ecrRepositoryPrefix"] == p for r in rules)]
            if missing:
                raise PullThroughCacheRuleNotFoundException(missing[0])
            rules = [r for r in rules if r["ecrRepositoryPrefix"] in named]
        size = int(self._get_param("maxResults") or 100)
        return ActionResult(page("pullThroughCacheRules", rules, size, self._get_param("nextToken")))


def effective_scanning(backend, repo):
    """What ECR applies to one repository: the registry's rules whose wildcard filter matches the
    whole name (an enhanced CONTINUOUS_SCAN rule wins over SCAN_ON_PUSH); with basic scanning
    and no rule matching, the repository's own scan-on-push setting. Not matched under enhanced
    scanning: not scanned (MANUAL)."""
    config = backend.registry_scanning_configuration
    matched = [(rule, f) for rule in config.get("rules", []) for f in rule.get("repositoryFilters", [])
               if wildcard(f.get("filter", "")).match(repo.name)]
    frequency, filters = "MANUAL", []
    for wanted in ("CONTINUOUS_SCAN", "SCAN_ON_PUSH"):
        hits = [f for rule, f in matched if rule.get("scanFrequency") == wanted]
        if hits:
            frequency, filters = wanted, hits[:1]
            break
    if frequency == "MANUAL" and config.get("scanType", "BASIC") == "BASIC" \
            and (repo.image_scanning_configuration or {}).get("scanOnPush"):
        frequency = "SCAN_ON_PUSH"
    return {"repositoryArn": repo.arn, "repositoryName": repo.name, "scanOnPush": frequency != "MANUAL",
            "scanFrequency": frequency, "appliedScanFilters": filters}


def batch_get_repository_scanning_configuration_response(self):
    """BatchGetRepositoryScanningConfiguration: 1 to 25 names, each answered or a failure."""
    from moto.core.responses import ActionResult
    names = self._get_param("repositoryNames") or []
    if not 1 <= len(names) <= 25:
        raise InvalidParameterException("repositoryNames must hold 1 to 25 names")
    with STATE.lock:
        backend = self.ecr_backend
        found, failures = [], []
        for name in names:
            repo = backend.repositories.get(name)
            if repo is None:
                failures.append({"repositoryName": name, "failureCode": "REPOSITORY_NOT_FOUND",
                                 "failureReason": "REPOSITORY_NOT_FOUND"})
            else:
                found.append(effective_scanning(backend, repo))
        return ActionResult({"scanningConfigurations": found, "failures": failures})


def without_rules_allowed(put_registry_scanning_configuration):
    """PutRegistryScanningConfiguration without `rules` clears them, as ECR does (moto fails)."""
    def put(self, scan_type, rules):
        return put_registry_scanning_configuration(self, scan_type, rules or [])
    return put


def accept_current_lifecycle_policies():
    """ECR's lifecycle schema since the archive storage class (November 2025): `storageClass` in
    the selection, sinceImagePulled and sinceImageTransitioned counts, and the transition action."""
    v = lifecycle_validation
    v.VALID_ACTION_PROPERTIES = {"type", "targetStorageClass"}
    v.VALID_ACTION_TYPE_VALUES = {"expire", "transition"}
    v.VALID_SELECTION_PROPERTIES = v.VALID_SELECTION_PROPERTIES | {"storageClass"}
    v.VALID_SELECTION_COUNT_TYPE_VALUES = {"imageCountMoreThan", "sinceImagePushed", "sinceImagePulled", "sinceImageTransitioned"}

"""What the emulator remembers beyond moto's repositories, behind one lock."""

import threading
from collections import Counter, defaultdict

from moto.ecr import models as ecr_models

# ECR's quota of tags per image (not adjustable).
TAGS_PER_IMAGE = 1000
# How long a "hang" fault keeps its caller waiting: past the client's attempt timeout.
HANG_SECONDS = 4


class State:
    def __init__(self):
        # Re-entrant: the patched backend calls take it inside the gateway's.
        self.lock = threading.RLock()
        self.pull_through = []  # pull-through cache rules, as CreatePullThroughCacheRule answers them: settings, kept by reset()
        self.account_settings = {}  # PutAccountSetting (BLOB_MOUNTING), also kept by reset()
        self.rescan_duration = "LIFETIME"  # Amazon Inspector's ECR rescan window (its GetConfiguration), kept by reset()
        self.blob_bytes = {}  # (repository, digest) -> the bytes of a blob uploaded (or mounted) there: content, kept by reset()
        self.caller = threading.local()  # per request: whether ecr-retag sent it (set by the gateway)
        self.reset()

    def reset(self):
        """Forgets every count, fault, quota and limit (not moto's repositories: see forget_all)."""
        with self.lock:
            self.calls = defaultdict(Counter)           # repository -> operation -> calls received
            self.writes = defaultdict(Counter)          # repository -> tag -> PutImages that moved it
            self.deletes = defaultdict(Counter)         # repository -> tag -> tags removed
            self.function_calls = defaultdict(Counter)  # the same as calls, ecr-retag's own only
            self.throttled = defaultdict(Counter)       # repository -> operation -> calls over a quota
            self.redundant = defaultdict(Counter)       # repository -> tag -> PutImages of a tag already there
            self.restores = defaultdict(Counter)        # repository -> digest -> restores of an archived image by PutImage
            self.faults = []                            # {"operation", "repository"?, "tag"?, "kind", "times", "seconds"?}
            self.quotas = []                            # {"operation", "prefix", "per_second", "tokens"?, "at"?}
            self.tag_limits = {}                        # repository -> tags per image
            self.scans = {}                             # (repository, digest) -> {"status", "counts"?}
            self.page_sizes = {}                        # repository -> images per DescribeImages page
            self.repository_page_size = 1000            # repositories per DescribeRepositories page
            self.mounts = defaultdict(Counter)          # repository -> blob -> mounted into it by the registry API
            self.uploads = {}                           # registry API upload session -> repository
            self.part_sizes = {}                        # UploadLayerPart upload id -> the size of each part so far
            self.signing = {}                           # (repository, digest) -> [managed signing status per profile]

    def forget_all(self):
        """POST /_strict/reset: the counts and faults, and every repository."""
        with self.lock:
            self.reset()
            self.pull_through = []
            self.account_settings = {}
            self.rescan_duration = "LIFETIME"
            self.blob_bytes = {}
            for backends in ecr_models.ecr_backends.values():
                for backend in backends.values():
                    backend.repositories.clear()

    def caller_is_function(self):
        return getattr(self.caller, "function", False)

    def tags_per_image(self, repository):
        return self.tag_limits.get(repository, TAGS_PER_IMAGE)

    def take_fault(self, operation, repository, tag):
        """The first fault still armed for this call, counted down; None if there is none."""
        for fault in self.faults:
            if (fault["operation"] == operation and fault.get("repository", repository) == repository
                    and fault.get("tag", tag) == tag and fault["times"] > 0):
                fault["times"] -= 1
                return fault
        return None

    def over_quota(self, operation, repository, now):
        """A token bucket per quota, shared by every repository under its prefix (as an account's is)."""
        for quota in self.quotas:
            if quota["operation"] != operation or not repository.startswith(quota["prefix"]):
                continue
            rate = float(quota["per_second"])
            quota["tokens"] = min(rate, quota.get("tokens", rate) + (now - quota.get("at", now)) * rate)
            quota["at"] = now
            if quota["tokens"] < 1:
                return True
            quota["tokens"] -= 1
        return False


STATE = State()

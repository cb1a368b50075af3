"""A local ECR for tests and the demo: moto's server, made strict where moto is not ECR.

Run:  python tests/emulator/strict_ecr.py [--host 127.0.0.1] [--port 0]
It prints the port it listens on as the first line of stdout. With
--exit-on-stdin-eof it exits when its standard input closes, so a test process
that dies takes it along.

Where moto diverges from ECR in a way that could hide a bug in ecr-retag, this
file makes it behave like ECR (per the ECR API reference and observed behaviour):

- PutImage computes the digest as sha256 of the manifest bytes, as ECR does,
  and refuses an `imageDigest` that does not match them
  (ImageDigestDoesNotMatchException). Moto invents digests and accepts any.
- PutImage to a missing repository is RepositoryNotFoundException (moto: HTML 500).
- PutImage of an existing tag in a tag-immutable repository is
  ImageTagAlreadyExistsException, even when the tag already points at the same
  image (moto: ImageAlreadyExistsException).
- Moving a tag in a mutable repository leaves the old image in place, untagged
  (moto deletes it when that was its last tag).
- BatchGetImage answers each requested id with the id as asked (moto echoes the
  image's last tag), names the asked-for digest in failures, and reports
  InvalidImageDigest / ImageTagDoesNotMatchDigest / MissingDigestAndTag.
- BatchGetImage honours `acceptedMediaTypes`: when the stored type is not
  accepted (or the parameter is missing), ECR may convert the manifest; here the
  bytes are re-serialised, so a client that forgets the parameter and puts the
  bytes back gets a digest mismatch, as it would against ECR.
- An image holds at most 1,000 tags; PutImage of one more is LimitExceededException
  (moto has no limit). POST /_strict/limits lowers it for one repository, so a
  test need not write a thousand tags first.
- DescribeImages honours `filter.tagStatus` (moto lists every image), and push
  times have ECR's millisecond precision (moto: whole seconds), so the order of
  two pushes in one second is known. It reports `subjectManifestDigest` for a
  referrer (a manifest with a `subject`) and `artifactMediaType` (the manifest's
  `artifactType`, else its config's media type), as ECR does; moto reports neither.
- Archive storage class (moto has none): UpdateImageStorageClass ARCHIVE archives an
  image, STANDARD starts its restore (ACTIVATING; it stays so here). A BatchGetImage of
  an archived image, by digest or by a tag on it, fails with ImageInaccessible;
  DescribeImages lists ACTIVE images unless `filter.imageStatus` asks for others, and
  reports `imageStatus`; a PutImage of an archived image's manifest restores it, as ECR
  does (counted under "restores" in /_strict/calls).
- PutImage, BatchGetImage and BatchDeleteImage are atomic with respect to each
  other, as ECR's are.

- Tag mutability with exclusions: an existing tag is immutable in an IMMUTABLE
  repository, in an IMMUTABLE_WITH_EXCLUSION one unless a filter matches it, and in a
  MUTABLE_WITH_EXCLUSION one if a filter matches it (`*` the only metacharacter); moto
  treats every tag of both exclusion modes as immutable or mutable alike. 1 to 5
  filters, each `^[0-9a-zA-Z._*-]{1,128}$`, as ECR requires (moto leaves that to
  botocore, which the Rust SDK does not have).

- ListImageReferrers (moto has none): the stored manifests whose `subject` is the asked
  digest, filtered by `artifactTypes` (1 to 5) and `artifactStatus` (ACTIVE unless asked),
  each with digest, media type, artifact type, size, annotations and status.
- DescribeImageSigningStatus (moto has none): the managed-signing status per signing profile
  that POST /_strict/signing set (none: pushed without managed signing); an unknown image is
  ImageNotFoundException.
- DescribeImages reports `imageScanStatus` and `imageScanFindingsSummary` as POST
  /_strict/scan set them (basic scans COMPLETE, enhanced ones ACTIVE; counts as ECR names
  them, UNTRIAGED included).

- DescribeImages and DescribeRepositories page their listings (maxResults, 1 to 1,000, default
  100; nextToken), in a stable order; POST /_strict/pages makes pages smaller, as ECR may
  return fewer than asked.

- Registry settings (what `ecr-retag doctor` reads): CreatePullThroughCacheRule and
  DescribePullThroughCacheRules (moto has neither; prefixes 2 to 30 characters, a duplicate
  refused, named prefixes that do not exist an error, pages of maxResults); the effective
  BatchGetRepositoryScanningConfiguration (moto matches filters by substring and never
  reports scan on push; PutRegistryScanningConfiguration without rules clears them, where
  moto fails): the registry's rules whose wildcard filter matches the whole name,
  CONTINUOUS_SCAN over SCAN_ON_PUSH, else with basic scanning the repository's own scan on
  push, else MANUAL; PutLifecyclePolicy takes today's schema (storageClass, sinceImagePulled,
  sinceImageTransitioned, the transition action), which moto refuses.

- Blobs per repository (blobs.py; moto keeps manifests only): a repository holds a blob once
  uploaded or mounted there, or named by a manifest pushed there. A push not from ecr-retag stands
  in for `docker push`, which uploads the blobs first; ecr-retag's own PutImage of a manifest new
  to the repository is refused as ECR refuses it: LayersNotFoundException for a missing config or
  layer, ReferencedImagesNotFoundException for an index's missing child. GetAccountSetting and
  PutAccountSetting (BLOB_MOUNTING, DISABLED unless set; moto has neither); GetAuthorizationToken's
  tokens last 12 hours, as ECR's do (moto's expired in 2015). BatchCheckLayerAvailability
  reports the same store.
- The registry API beside the ECR API, on the same endpoint (`/v2/...`), authenticated with HTTP
  Basic `AWS:<password>` from GetAuthorizationToken (401 otherwise): `HEAD /v2/<name>/blobs/<digest>`
  (200 or 404); `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<source>`: 201 (mounted) when
  BLOB_MOUNTING is enabled, both repositories have the same encryption configuration and a manifest
  stored in the source names the blob, else 202 with an upload session, as a registry answers when
  it cannot mount; `PUT /v2/<name>/blobs/uploads/<session>?digest=<d>` with the whole blob (201, or
  400 when the bytes do not hash to d). Counted per repository in /_strict/calls as
  RegistryBlobHead, RegistryBlobMount and RegistryBlobUpload, and "mounts" by blob. A fault armed
  for operation RegistryBlobMount declines the next mount (202).
- A blob's bytes through the ECR API, for a promotion that streams what it cannot mount: the bytes
  of blobs uploaded (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, or the registry API's
  PUT) are kept; CompleteLayerUpload refuses parts but the last under 5 MiB
  (LayerPartTooSmallException), bytes that do not hash to the digest named (InvalidLayerException)
  and a layer already there (LayerAlreadyExistsException); GetDownloadUrlForLayer (moto has none)
  answers a URL on this emulator, /_strict/blob-bytes/<repository>/<digest>, that serves the bytes
  without credentials as ECR's presigned S3 URLs do (LayerInaccessibleException for a blob the
  emulator holds no bytes of: those a docker push stand-in named).
- ListImageReferrers pages (maxResults, nextToken).

- AWS KMS, for promotion records: moto's KMS (CreateKey, GetPublicKey, Sign, Verify) on the same
  endpoint, with Sign's `MessageType` DIGEST signing the digest given (moto hashed it again), a digest
  of the wrong length and a RAW message over 4,096 bytes refused (kms.py). KMS calls are counted under
  "(kms)" in /_strict/calls; `--function-ops` names the function's as `kms:Sign`.

Not emulated: layer bytes for pushes other than ecr-retag's uploads, chunked registry API uploads, GET of blobs through the registry API, the
restore's 20 minutes, scans and signing themselves (hooks set their results); quotas
only on request (below).

The code is the package beside this file, strict/ (its __init__ maps it).

Test hooks (not ECR), under /_strict/:
- GET  /_strict/calls?repository=NAME  ->  {"BatchGetImage": n, "PutImage": n, ..., "writes": {"tag": n}}
  (calls as received, faults included; "writes": PutImages that changed where a tag points;
  "deletes": tags removed by BatchDeleteImage)
- GET  /_strict/function-calls[?repository=NAME]  ->  the calls made by ecr-retag itself
  (User-Agent app/ecr-retag), all or on one repository (ListTagsForResource: the ARN's)
- POST /_strict/faults  {"operation": "PutImage", "repository": NAME, "tag": TAG (optional),
                         "kind": "throttle" | "500" | "503" | "reset" | "hang" | "late", "times": N,
                         "seconds": S (for "late")}
  The next N matching calls fail that way: ThrottlingException, ServerException (500),
  a bare 503, the connection closed without an answer, or an answer (500) only after
  HANG_SECONDS, past the client's per-attempt timeout. A faulted call changes nothing,
  except "late": the call is carried out normally, but only after S seconds. With S past
  the client's attempt timeout the client has given up (and retries) while the call is
  still to land, as a request ECR received keeps going when its caller stops waiting.
- POST /_strict/quota  {"operation": "PutImage", "prefix": P, "per_second": N}  ->  calls of that
  operation on repositories whose names start with P share a token bucket of N per second
  (ECR's quotas are per account); calls over it answer ThrottlingException. /_strict/calls
  then reports "throttled" (by operation) and "redundant" (PutImages of a tag already on
  the image, answered ImageAlreadyExistsException).
- POST /_strict/limits  {"repository": NAME, "tags_per_image": N}  ->  that repository's images
  hold at most N tags (default 1,000, ECR's)
- POST /_strict/scan  {"repository": NAME, "digest": D, "status": "ACTIVE" | "COMPLETE" | "PENDING" | ...,
                       "counts": {"HIGH": 1, ...} (optional)}  ->  what DescribeImages says of the image's scan
- POST /_strict/signing  {"repository": NAME, "digest": D, "status": "COMPLETE" | "IN_PROGRESS" | "FAILED",
                          "profile": ARN (optional)}  ->  that profile's managed-signing status of the image
- POST /_strict/pages  {"repository": NAME, "size": N}  ->  DescribeImages answers at most N images a page there;
                       {"size": N} alone: DescribeRepositories answers at most N repositories a page
- POST /_strict/reset                  ->  forget every repository, count and fault

With --latency-ms N every ECR and KMS call takes N ms more, outside the emulator's lock, as the
network and service time of a real region would (for benchmarks: concurrency shows).

With --function-ops A,B the calls ecr-retag makes (recognised by its User-Agent) are
limited to those operations; any other is refused with AccessDeniedException, as a
least-privilege IAM policy would, and recorded.
"""

# The script's own directory is first on sys.path: the package beside it.
from strict.server import main

if __name__ == "__main__":
    main(__doc__.splitlines()[0])

"""The strict local ECR as a package: moto's server, made to behave like ECR.

- state.py    everything the emulator remembers beyond moto (counts, faults, quotas,
              limits), behind one lock, with one reset
- errors.py   ECR's errors that moto lacks, and the raw answers the gateway sends
- patches.py  moto's ECR backend and responses, patched where moto is not ECR
- gateway.py  the WSGI front: counts calls, injects faults and quotas, limits the
              function to its IAM policy's operations, routes the hooks
- signing.py  what ECR tells of an image beyond its manifest: referrers, managed signing's
              status, scan status and findings in DescribeImages
- settings.py registry settings promotion and the doctor read: pull-through cache rules, the
              effective scanning configuration, lifecycle policies with archive and pull times
- blobs.py    blobs as ECR keeps them: BLOB_MOUNTING, PutImage's blob checks, layer uploads,
              download URLs, and the registry API's blob calls (token auth, HEAD, mount, upload)
- kms.py      moto's KMS where promotion records need KMS: Sign with a DIGEST
- common.py   what several patched operations share: ECR's wildcards and its pages
- hooks.py    the /_strict/ test hooks
- server.py   the command line and the HTTP server

tests/emulator/strict_ecr.py is the entry point, and lists what is emulated.
"""

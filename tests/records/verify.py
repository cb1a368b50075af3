"""Verifies a promotion record's DSSE envelope with securesystemslib, a verifier ecr-retag did not
write: `python verify.py ENVELOPE.json PUBLIC_KEY.pem`. Prints the statement's predicate type and
rule and exits 0 when the signature verifies; exits 1 with securesystemslib's reason otherwise."""

import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey


def main(envelope_path, pem_path):
    with open(envelope_path, "rb") as f:
        envelope = Envelope.from_dict(json.load(f))
    with open(pem_path, "rb") as f:
        public = load_pem_public_key(f.read())
    # securesystemslib considers a signature only for a key of the same keyid (its issue #416):
    # the key is the one the record names.
    keyid = next(iter(envelope.signatures.values())).keyid
    key = SSlibKey.from_crypto(public, keyid=keyid, scheme="ecdsa-sha2-nistp256")
    try:
        envelope.verify([key], 1)
    except VerificationError as e:
        print(f"not verified: {e}")
        return 1
    statement = json.loads(envelope.payload)
    print(envelope.payload_type, statement["predicateType"], statement["predicate"]["rule"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

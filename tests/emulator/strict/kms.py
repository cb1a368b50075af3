"""AWS KMS as promotion records use it, where moto is not KMS: Sign with `MessageType` DIGEST signs
the digest given (moto hashes it again, so nothing outside moto could verify the signature), a
DIGEST of the wrong length for the algorithm is refused, and a RAW message is at most 4,096 bytes,
as KMS says (ValidationException); GetPublicKey names the key by its ARN, as KMS does (moto: its id)."""

import base64
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from moto.kms.exceptions import ValidationException
from moto.kms.models import KmsBackend
from moto.kms.responses import KmsResponse

HASHES = {"ECDSA_SHA_256": hashes.SHA256(), "ECDSA_SHA_384": hashes.SHA384(), "ECDSA_SHA_512": hashes.SHA512()}


def sign_response(self):
    """Sign, with DIGEST honoured for ECDSA keys; anything else as moto has it."""
    message_type = self._get_param("MessageType") or "RAW"
    # moto's request parsing has already decoded the blob.
    message = self._get_param("Message") or b""
    if isinstance(message, str):
        message = message.encode()
    if message_type == "RAW" and len(message) > 4096:
        raise ValidationException("Digest or message is too long: a RAW message is at most 4096 bytes; use MessageType DIGEST")
    algorithm = self._get_param("SigningAlgorithm")
    if message_type != "DIGEST" or algorithm not in HASHES:
        return ORIGINAL_SIGN(self)
    digest = HASHES[algorithm]
    if len(message) != digest.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}: {len(message)} bytes, not {digest.digest_size}")
    key = self.kms_backend.describe_key(self._get_param("KeyId"))
    if algorithm not in key.signing_algorithms:
        raise ValidationException(f"Value '{algorithm}' at 'SigningAlgorithm' failed to satisfy constraint: {key.signing_algorithms}")
    signature = key.private_key.private_key.sign(message, ec.ECDSA(utils.Prehashed(digest)))
    return json.dumps({"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(), "SigningAlgorithm": algorithm})


def get_public_key_response(self):
    """GetPublicKey, its `KeyId` the key's ARN."""
    answer = json.loads(ORIGINAL_GET_PUBLIC_KEY(self))
    answer["KeyId"] = self.kms_backend.describe_key(self._get_param("KeyId")).arn
    return json.dumps(answer)


ORIGINAL_SIGN = KmsResponse.sign
ORIGINAL_GET_PUBLIC_KEY = KmsResponse.get_public_key


def install():
    KmsResponse.sign = sign_response
    KmsResponse.get_public_key = get_public_key_response

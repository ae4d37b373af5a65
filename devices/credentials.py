"""Device MQTT credentials: generated once, stored only as a salted PBKDF2-SHA512 hash.

The stored form is Mosquitto's own (`$7$iterations$salt$hash`, base64), so the broker's
password file is written straight from the registry and no plain password is ever kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# The passwords are random with about 144 bits of entropy, so stretching adds little; the
# iteration count stays modest because the broker re-derives the hash on every device connect.
ITERATIONS = 1_000
_SALT_BYTES = 12


def generate_password() -> str:
    """A random password with about 144 bits of entropy, safe in URLs and config files."""
    return secrets.token_urlsafe(18)


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    """Hash in Mosquitto's PBKDF2-SHA512 format."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a stored hash in constant time."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- digest passwords (GB/T 28181) --------------------------------------------------------
#
# SIP digest authentication needs the password, or HA1 = MD5(user:realm:password), on the
# verifying side: a one-way hash such as the MQTT one cannot check a digest. So a digest
# device's password is kept sealed: XORed with a keystream that HMAC-SHA256 derives from the
# hub's secret key (SB_SECRET or SB_DATA_DIR/secret.key), the device id and a fresh random
# salt, with an HMAC tag that refuses a tampered or foreign value. The database alone does
# not reveal it; the database and the key together do, as they would for any verifier that
# must recompute a digest. The password is sealed rather than HA1 so that changing the realm
# (SB_GB_DOMAIN) does not lock every device out.

_SEAL = b"sb-digest-seal-v1"
_TAG_BYTES = 8


def seal_password(key: bytes, device_id: str, password: str) -> str:
    """`v1$salt$ciphertext$tag`, hex; the password at most 32 bytes."""
    plain = password.encode()
    if len(plain) > 32:
        raise ValueError("a sealed password is at most 32 bytes")
    salt = secrets.token_bytes(16)
    stream = _keystream(key, device_id, salt)
    cipher = bytes(a ^ b for a, b in zip(plain, stream, strict=False))
    return f"v1${salt.hex()}${cipher.hex()}${_tag(key, device_id, salt, cipher).hex()}"


def open_sealed(key: bytes, device_id: str, sealed: str) -> str | None:
    """The password, or None for a value not sealed by this key for this device."""
    parts = sealed.split("$")
    if len(parts) != 4 or parts[0] != "v1":
        return None
    try:
        salt, cipher, tag = (bytes.fromhex(p) for p in parts[1:])
    except ValueError:
        return None
    if not hmac.compare_digest(tag, _tag(key, device_id, salt, cipher)) or len(cipher) > 32:
        return None
    stream = _keystream(key, device_id, salt)
    try:
        return bytes(a ^ b for a, b in zip(cipher, stream, strict=False)).decode()
    except UnicodeDecodeError:
        return None


def _keystream(key: bytes, device_id: str, salt: bytes) -> bytes:
    return hmac.new(
        key, _SEAL + b"|stream|" + device_id.encode() + b"|" + salt, hashlib.sha256
    ).digest()


def _tag(key: bytes, device_id: str, salt: bytes, cipher: bytes) -> bytes:
    msg = _SEAL + b"|tag|" + device_id.encode() + b"|" + salt + b"|" + cipher
    return hmac.new(key, msg, hashlib.sha256).digest()[:_TAG_BYTES]

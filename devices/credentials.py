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

"""Digests of saved files: a SHA-256, or an HMAC-SHA256 with a secret key.

The digest covers ``params.json`` (which records the SHA-256 of the weights
file), so it detects a change to either file. A SHA-256 detects changes made
without recomputing it (corruption, mixed-up files, edits by hand); anyone
who can write the files can recompute it. An HMAC needs the key: without it,
no one can change the files unnoticed.
"""

import hashlib
import hmac
import json
import os

__all__ = ["check_key", "digest", "file_sha256", "verify_digest"]


def check_key(key):
    """The key as bytes (None stays None); a TypeError unless a non-empty secret."""
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise TypeError(
            f"key must be a non-empty bytes or str secret; got {type(key).__name__}"
            + (" (empty)" if isinstance(key, (bytes, bytearray)) else "")
            + "."
        )
    return bytes(key)


def _canonical(document):
    """The bytes the digest covers: the document, without the digest itself.

    Computed from the parsed JSON (keys sorted, no whitespace), so it does not
    depend on how the file is laid out, and covers exactly what is loaded.
    """
    content = {name: value for name, value in document.items() if name != "digest"}
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def digest(document, key):
    """``{"sha256": hex}``, or with ``key`` ``{"hmac_sha256": hex}``."""
    content = _canonical(document)
    if key is None:
        return {"sha256": hashlib.sha256(content).hexdigest()}
    return {"hmac_sha256": hmac.new(key, content, hashlib.sha256).hexdigest()}


def verify_digest(document, key, path):
    """Raise a ValueError unless ``document``'s digest is the one ``key`` gives.

    With a key, only an HMAC is accepted; without one, a file holding an HMAC
    is refused, since it cannot be verified.
    """
    recorded = document["digest"]
    if key is None and "hmac_sha256" in recorded:
        raise ValueError(
            f"{os.fspath(path)!r} was saved with a key: pass the same key to "
            "load_fitted (key=...) to verify and load it."
        )
    if key is not None and "hmac_sha256" not in recorded:
        raise ValueError(
            f"{os.fspath(path)!r} is not authenticated with a key (it holds no "
            "HMAC): it was saved without one, or its HMAC was removed. Refused, "
            "since load_fitted was given a key."
        )
    expected = digest(document, key)
    ((name, value),) = expected.items()
    # Compared as bytes: compare_digest refuses str with non-ASCII characters.
    if not isinstance(recorded.get(name), str) or not hmac.compare_digest(
        recorded[name].encode(), value.encode()
    ):
        what = "HMAC" if key is not None else "SHA-256"
        cause = (
            "the files were changed after saving, or the key differs"
            if key is not None
            else "the file was modified after saving"
        )
        raise ValueError(
            f"{os.fspath(path)!r} does not match its recorded {what}: {cause}."
        )


def file_sha256(path):
    """The SHA-256 of a file, read 1 MiB at a time."""
    hasher = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            hasher.update(block)
    return hasher.hexdigest()

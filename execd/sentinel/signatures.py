"""HMAC-SHA256 signatures on intents: proof that an intent came from a holder of the key.

The signed bytes are the intent's *canonical form*: the JSON object of the input
line without its ``signature`` key, re-encoded by Python's own ``json`` module as
``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``,
UTF-8. It is computed with exactly that call, so a producer using it gets the same
bytes, numbers included. ``execd sign`` signs lines this way for producers that
want a reference.

The key is read once at start-up from a file or a systemd credential and never
logged or recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from execd.config.schema import MAX_SECRET_BYTES, ConfigError, ConfigProblem, RiskConfig
from execd.model import json_depth
from execd.model.errors import FileRefused
from execd.model.files import read_regular


def canonical(line: bytes) -> bytes:
    """The canonical form of one input line.

    Raises ValueError if it is not JSON, or nests deeper than
    :data:`~execd.model.json_depth.MAX_JSON_DEPTH` (the limit the reader enforces, checked
    here first so that ``json`` never recurses into what the reader would refuse).
    """
    if json_depth.exceeds(line):
        raise ValueError(f"nested more than {json_depth.MAX_JSON_DEPTH} levels deep")
    obj: Any = json.loads(line)
    if isinstance(obj, dict):
        obj.pop("signature", None)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(key: bytes, line: bytes) -> str:
    """The hex signature of ``line`` under ``key``."""
    return hmac.new(key, canonical(line), hashlib.sha256).hexdigest()


_SIGNED_KINDS = frozenset(("intent", "target", "drift_target"))


def signed_line(key: bytes, line: bytes, *, whole: bool = False) -> bytes:
    """``line`` with its signature added, if it is an intent or a target; otherwise
    ``line`` as it is. ``whole``: ``line`` is a target file's object (over any number
    of lines, ``kind`` optional).

    The signature goes in as text before the closing brace: the line is never
    re-encoded, so every number and string keeps the exact spelling the producer
    wrote (a re-encode through floats would change quantities). Raises ValueError
    for a line that is not JSON, or an intent that is already signed.
    """
    text = line.strip()
    try:
        obj: Any = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to sign") from None
    if not isinstance(obj, dict) or obj.get("kind", "target" if whole else None) not in (
            _SIGNED_KINDS):
        return line
    if "signature" in obj:
        raise ValueError(f"the {obj.get('kind', 'target')} is signed already")
    signature = sign(key, text)
    body = text[:-1].rstrip()
    return body + b',"signature":"' + signature.encode() + b'"}'


def verify(key: bytes, line: bytes, signature: str) -> bool:
    """True when ``signature`` is the signature of ``line`` (constant-time compare)."""
    return hmac.compare_digest(sign(key, line), signature)


def read_key_file(path: str | Path) -> bytes:
    """A key given on the command line (``--key-file``): the file's bytes without
    trailing newlines. Raises FileRefused (a regular file of at most MAX_SECRET_BYTES)."""
    return read_regular(path, MAX_SECRET_BYTES, "key file").rstrip(b"\r\n")


def load_key(risk: RiskConfig, config_file: str) -> bytes | None:
    """The signing key named by the config, or None when none is configured.

    Raises ConfigError (file, key, expected, found) when it cannot be read, is not a
    regular file of at most MAX_SECRET_BYTES (a FIFO would block the start) or is too
    short to be a secret. Trailing newlines are not part of the key.
    """
    if risk.key_credential:
        key_name = "risk.key_credential"
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConfigError([ConfigProblem(
                config_file, key_name, "CREDENTIALS_DIRECTORY set by systemd "
                "(LoadCredential=)", "it unset")])
        path = Path(directory) / risk.key_credential
    elif risk.key_file:
        key_name, path = "risk.key_file", Path(risk.key_file)
    else:
        return None
    try:
        key = read_key_file(path)
    except FileRefused as exc:
        raise ConfigError([ConfigProblem(config_file, key_name, exc.expected,
                                         f"{path}: {exc.found}")]) from None
    if len(key) < 16:
        raise ConfigError([ConfigProblem(config_file, key_name, "a key of at least 16 bytes",
                                         f"{len(key)} bytes in {path}")])
    return key

"""The installation's Ed25519 checkpoint key: created once, readable only by its owner.

``key_id`` is the first 16 hex digits of SHA-256 of the raw 32-byte public key; a checkpoint
signs the ASCII bytes ``therapy-audit-v1|<head_seq>|<head_hash>`` (``shared/audit-format.md``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import SigningKeyError

CHECKPOINT_PREFIX = "therapy-audit-v1"


def checkpoint_message(head_seq: int, head_hash: str) -> bytes:
    return f"{CHECKPOINT_PREFIX}|{head_seq}|{head_hash}".encode("ascii")


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A trusted checkpoint key, with where it came from (for messages)."""

    key_id: str
    key: Ed25519PublicKey
    source: str

    @property
    def pem(self) -> str:
        return public_pem(self.key)

    def verifies(self, head_seq: int, head_hash: str, signature_hex: str) -> bool:
        try:
            self.key.verify(bytes.fromhex(signature_hex), checkpoint_message(head_seq, head_hash))
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_public_keys(pem_text: str, source: str) -> list[PublicKey]:
    """Every Ed25519 public key in a PEM text (several may be concatenated)."""
    blocks = []
    current: list[str] = []
    for line in pem_text.splitlines():
        if line.startswith("-----BEGIN"):
            current = [line]
        elif line.startswith("-----END") and current:
            current.append(line)
            blocks.append("\n".join(current) + "\n")
            current = []
        elif current:
            current.append(line)
    keys = []
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block.encode("ascii"))
        except ValueError as exc:
            raise SigningKeyError(
                f"{source} holds a PEM block that is not a public key: {exc}"
            ) from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError(f"{source} holds a {type(key).__name__}, not an Ed25519 key")
        keys.append(PublicKey(key_id_of(key), key, source))
    if not keys:
        raise SigningKeyError(f"{source} holds no PEM public key (-----BEGIN PUBLIC KEY-----)")
    return keys


def load_public_keys(path: Path) -> list[PublicKey]:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"cannot read the public key file {path}: {exc}") from None
    return parse_public_keys(text, str(path))


class CheckpointSigner:
    """Holds this installation's private key and signs checkpoints."""

    def __init__(self, private_key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._private_key = private_key
        self.path = path
        self.public = PublicKey(
            key_id_of(private_key.public_key()), private_key.public_key(), str(path or "memory")
        )

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, head_seq: int, head_hash: str) -> str:
        return self._private_key.sign(checkpoint_message(head_seq, head_hash)).hex()

    @classmethod
    def generate(cls) -> CheckpointSigner:
        """An in-memory key (tests, benchmarks); installations use ``load_or_create``."""
        return cls(Ed25519PrivateKey.generate())


def load_or_create_signer(path: Path) -> tuple[CheckpointSigner, bool]:
    """Load the private key at ``path`` or create it (mode 0600); returns (signer, created).

    Creation is atomic and race-free between processes: the key is written to a private
    temporary file and hard-linked into place, which fails if another process won the race
    (then its key is loaded). A key file that others can read is refused, not used.
    """
    path = Path(path)
    created = False
    if not path.exists():
        created = _create_key_file(path)
    return CheckpointSigner(_load_private_key(path), path), created


def _create_key_file(path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # regardless of the umask
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        tmp.unlink()
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return created


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SigningKeyError(
                f"the private key file {path} can be read by others (mode {mode:04o}); "
                f"run `chmod 600 {path}` and check nobody copied it"
            )
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningKeyError(f"cannot read the private key file {path}: {exc}") from None
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not a readable private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key

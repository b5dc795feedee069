"""An independent verifier of audit trail exports, written from ``shared/audit-format.md`` alone.

It imports nothing from the console: only the standard library and ``cryptography``, as an
auditor would. Usage: ``python independent_verifier.py EXPORT.jsonl PUBLIC_KEY.pem`` (exit 0
when the trail verifies; every problem is printed as ``seq N: why``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
EVENT_KEYS = {
    "v",
    "seq",
    "ts",
    "actor",
    "role",
    "workstation",
    "action",
    "subject",
    "data",
    "prev",
    "hash",
}
CHECKPOINT_KEYS = {"head_seq", "head_hash", "key_id", "signature"}


class _Float(Exception):
    pass


def _no_float(text: str) -> float:
    raise _Float(text)


def load_keys(pem_path: Path) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key in the PEM file, by key id (first 16 hex of SHA-256 of the raw
    32-byte key)."""
    text = pem_path.read_text(encoding="ascii")
    keys = {}
    for block in text.split("-----END PUBLIC KEY-----"):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        pem = block[block.index("-----BEGIN PUBLIC KEY-----") :] + "-----END PUBLIC KEY-----\n"
        key = serialization.load_pem_public_key(pem.encode("ascii"))
        assert isinstance(key, Ed25519PublicKey)
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys[hashlib.sha256(raw).hexdigest()[:16]] = key
    return keys


def canonical_bytes(event: dict) -> bytes:
    body = {k: v for k, v in event.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify(lines: list[str], keys: dict[str, Ed25519PublicKey]) -> list[tuple[int, str]]:
    """All problems as (seq, reason); an empty list means the trail verifies."""
    problems: list[tuple[int, str]] = []
    prev_seq, prev_hash = 0, GENESIS
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = prev_seq + 1
        try:
            event = json.loads(line, parse_float=_no_float, parse_constant=_no_float)
        except _Float as found:
            problems.append((where, f"line {number}: floating-point number {found}"))
            event = json.loads(line)
        except ValueError:
            problems.append((where, f"line {number}: not JSON"))
            continue
        if not isinstance(event, dict) or set(event) != EVENT_KEYS:
            problems.append((where, f"line {number}: not an event object with the format's keys"))
            continue
        seq = event["seq"]
        if type(seq) is not int:
            problems.append((where, f"line {number}: seq is not an integer"))
            continue
        if event["v"] != 1:
            problems.append((seq, "version is not 1"))
        if seq != prev_seq + 1:
            problems.append((seq, f"seq {seq} does not follow seq {prev_seq}"))
        elif event["prev"] != prev_hash:
            problems.append((seq, f"prev is not the hash of seq {prev_seq}"))
        if hashlib.sha256(canonical_bytes(event)).hexdigest() != event["hash"]:
            problems.append((seq, "hash is not SHA-256 of the canonical bytes"))
        if event["action"] == "audit.checkpoint":
            data = event["data"]
            if not isinstance(data, dict) or set(data) != CHECKPOINT_KEYS:
                problems.append((seq, "checkpoint data malformed"))
            elif data["head_seq"] != seq - 1 or data["head_hash"] != prev_hash:
                problems.append((seq, "checkpoint does not name the event just before it"))
            elif data["key_id"] not in keys:
                problems.append((seq, f"checkpoint key {data['key_id']} is not trusted"))
            else:
                message = f"therapy-audit-v1|{data['head_seq']}|{data['head_hash']}"
                try:
                    keys[data["key_id"]].verify(
                        bytes.fromhex(data["signature"]), message.encode("ascii")
                    )
                except (InvalidSignature, ValueError):
                    problems.append((seq, "checkpoint signature invalid"))
        if seq > prev_seq:
            prev_seq, prev_hash = seq, event["hash"]
    return problems


def verify_file(export: Path, public_key: Path) -> list[tuple[int, str]]:
    lines = export.read_text(encoding="utf-8").splitlines()
    return verify(lines, load_keys(public_key))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: independent_verifier.py EXPORT.jsonl PUBLIC_KEY.pem", file=sys.stderr)
        return 2
    problems = verify_file(Path(argv[0]), Path(argv[1]))
    for seq, reason in problems:
        print(f"seq {seq}: {reason}")
    print("VERIFIED" if not problems else f"FAILED ({len(problems)} problems)")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

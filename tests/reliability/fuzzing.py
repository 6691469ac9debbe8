"""Mutations of webhook bodies, signatures and headers, shared by the fuzz test and
bench/reliability_fuzz.py. Seeded ``random.Random`` mutators (fast enough for 100,000 cases);
the pytest version drives them from hypothesis-chosen seeds and adds hypothesis strategies.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

from whatsapp_core.signature import sign

ALLOWED = {200, 400, 403, 413}
"""Every answer the webhook may give to anything a client sends (never 5xx)."""

KNOWN_BUGS: dict[tuple[type[BaseException], str], str] = {
    # (exception type, words of its message) -> section of docs/reliability.md
    # (empty: every bug the fuzzer found is fixed; see docs/reliability.md)
}
"""Exceptions the fuzzer finds that are reported bugs, not yet fixed. The fuzz tests count
them instead of failing, and test_fuzz.py keeps one strict xfail test per bug, which
starts failing (XPASS) once the bug is fixed: then delete the entry here and the marker."""


def known_bug(error: BaseException) -> str | None:
    for (kind, words), section in KNOWN_BUGS.items():
        if isinstance(error, kind) and words in str(error):
            return section
    return None


WEIRD_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63, 1e308, -1e-308, "", " ", "\u0000", "\ud800"[:0] + "\u202e",
    "9" * 400, "🙂" * 50, "/intent{\"a\": 1}", "wamid." + "A" * 300, [], {}, [None], {"": None},
    [[[[[]]]]], {"body": {"body": {"body": None}}}, "null", "NaN", "1e999", "-0",
    "\\u0000", "<script>", "' OR 1=1 --", "\r\n\r\nHTTP/1.1 200 OK",
]
KEYS = [
    "object", "entry", "changes", "value", "field", "messages", "statuses", "contacts",
    "metadata", "phone_number_id", "from", "id", "timestamp", "type", "text", "body",
    "interactive", "button_reply", "list_reply", "nfm_reply", "response_json", "context",
    "referral", "errors", "code", "wa_id", "user_id", "profile", "image", "caption",
    "location", "latitude", "reaction", "emoji", "status", "recipient_id", "pricing",
]


def load_corpus(directory: Path) -> list[dict]:
    return [json.loads(p.read_bytes()) for p in sorted(directory.glob("*.json"))]


def _paths(root: Any, max_depth: int = 40) -> list[tuple]:
    """Every path into ``root`` (iterative; nodes deeper than ``max_depth`` are not listed)."""
    found: list[tuple] = []
    stack: list[tuple[Any, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        found.append(path)
        if len(path) >= max_depth:
            continue
        if isinstance(node, dict):
            stack.extend((value, (*path, key)) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*path, index)) for index, value in enumerate(node))
    return found


def _set(root: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node = root
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return root


def _get(root: Any, path: tuple) -> Any:
    for step in path:
        root = root[step]
    return root


def _weird(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.5 or depth > 3:
        return copy.deepcopy(rng.choice(WEIRD_VALUES))
    if roll < 0.75:
        return {rng.choice(KEYS): _weird(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [_weird(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def mutate_json(doc: Any, rng: random.Random) -> Any:
    """1-4 structural mutations: replace, delete, add keys, duplicate lists, deep nesting."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 4)):
        paths = _paths(doc)
        path = rng.choice(paths)
        kind = rng.random()
        try:
            if kind < 0.45:
                doc = _set(doc, path, _weird(rng))
            elif kind < 0.6 and path:
                parent = _get(doc, path[:-1])
                if isinstance(parent, dict):
                    parent.pop(path[-1], None)
                elif isinstance(parent, list) and parent:
                    parent.pop(min(path[-1], len(parent) - 1))
            elif kind < 0.75:
                target = _get(doc, path)
                if isinstance(target, dict):
                    target[rng.choice(KEYS)] = _weird(rng)
            elif kind < 0.85:
                target = _get(doc, path)
                if isinstance(target, list) and target:
                    target.extend(copy.deepcopy(target) * rng.randint(1, 5))
            elif kind < 0.9:
                nested: Any = copy.deepcopy(rng.choice(WEIRD_VALUES))
                for _ in range(rng.choice([10, 50, 200])):
                    nested = [nested] if rng.random() < 0.5 else {"value": nested}
                doc = _set(doc, path, nested)
            else:
                target = _get(doc, path)
                if isinstance(target, str):
                    doc = _set(doc, path, target * rng.randint(2, 50))
        except (KeyError, IndexError, TypeError):
            continue
    return doc


def mutate_bytes(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        if not data:
            break
        roll = rng.random()
        position = rng.randrange(len(data))
        if roll < 0.4:
            data[position] = rng.randrange(256)
        elif roll < 0.6:
            del data[position : position + rng.randint(1, 20)]
        elif roll < 0.8:
            data[position:position] = rng.choice(
                [b"\x00", b"\xff\xfe", b"{", b"]", b'"', b"\\u", b"\xed\xa0\x80", b",,"]
            )
        else:
            data = data[:position]
    return bytes(data)


def mutate_signature(body: bytes, secret: str, rng: random.Random) -> str | None:
    good = sign(body, secret)
    choices = [
        None, "", "sha256=", good.upper().replace("SHA256", "sha256"), good[:-1],
        good + "0", good.replace("sha256=", "sha1="), good.replace("sha256=", ""),
        "sha256=" + "g" * 64, "sha256=" + "0" * 64, " " + good, good + " ",
        "sha256=" + good[7:].encode().hex()[:64], sign(body + b" ", secret),
        sign(body, secret + "x"), "sha256=" + "é" * 64, "sha256=" + "0" * 10_000,
    ]
    return rng.choice(choices)


def case(corpus: list[dict], secret: str, rng: random.Random) -> tuple[bytes, str | None, str]:
    """One fuzz case: (body, signature header, kind). Most are validly signed so that they
    reach the parser; the rest probe the signature check."""
    base = rng.choice(corpus)
    roll = rng.random()
    if roll < 0.01:  # nesting far deeper than any JSON encoder would write
        depth = rng.choice([1_000, 10_000, 100_000])
        opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        body = (b'{"object":"whatsapp_business_account","entry":' + opener * depth
                + b"1" + closer * depth + b"}")
        return body, sign(body, secret), "deep"
    if roll < 0.6:
        body = json.dumps(mutate_json(base, rng)).encode()
        kind = "json"
    elif roll < 0.8:
        body = mutate_bytes(json.dumps(base).encode(), rng)
        kind = "bytes"
    else:
        body = json.dumps(base if rng.random() < 0.5 else mutate_json(base, rng)).encode()
        return body, mutate_signature(body, secret, rng), "signature"
    return body, sign(body, secret), kind

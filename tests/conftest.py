"""Shared fixtures: the public webhook corpus and signing helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(
    os.environ.get("WHATSAPP_CORPUS_DIR", REPO_ROOT.parent / "shared" / "corpus" / "webhooks")
)


def corpus_files() -> list[Path]:
    """Every webhook sample of the shared corpus (fails loudly when the corpus is absent)."""
    files = sorted(CORPUS_DIR.glob("*.json"))
    if not files:
        raise RuntimeError(f"webhook corpus not found in {CORPUS_DIR} (set WHATSAPP_CORPUS_DIR)")
    return files


def corpus_body(name: str) -> bytes:
    """The raw bytes of one corpus sample."""
    return (CORPUS_DIR / name).read_bytes()


def corpus_json(name: str) -> dict:
    return json.loads(corpus_body(name))


@pytest.fixture(scope="session")
def corpus() -> list[Path]:
    return corpus_files()


async def start_graph_stub(messages) -> tuple[object, str]:
    """A stand-in for the Graph API's ``POST /v21.0/{pnid}/messages`` (``messages`` is the
    aiohttp handler) on a free loopback port: ``(runner, base_url)``; the caller ends it
    with ``await runner.cleanup()``."""
    from aiohttp import web

    app = web.Application()
    app.router.add_post("/v21.0/{pnid}/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

"""The bundled bot's data and stories, checked with Rasa's own commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RASA = str(Path(sys.executable).parent / "rasa")
MODEL = REPO_ROOT / "models" / "whatsapp-bot.tar.gz"


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RASA, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_rasa_data_validate_is_clean():
    result = run("data", "validate", "--fail-on-warnings")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_test_stories_pass(tmp_path):
    assert MODEL.exists(), "train first: ./bin/train"
    result = run(
        "test", "core", "--model", str(MODEL), "--stories", "tests/test_stories.yml",
        "--fail-on-prediction-errors", "--out", str(tmp_path / "results"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

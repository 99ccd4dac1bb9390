"""tools/: the README's screenshot script refuses what it cannot do before it trains or starts anything."""

import subprocess
import sys

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "tools" / "screenshots.py"


def run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=120)


def test_unknown_pages_and_a_missing_dataset_are_refused_in_one_line(tmp_path):
    refused = run("--only", "home,settings", "--output", str(tmp_path / "shots"))
    assert refused.returncode == 2
    assert "Expected page names among home, dataset, training, metrics, live, tune; received settings" in refused.stderr
    missing = tmp_path / "nowhere.zip"
    refused = run("--only", "home", "--data", str(missing), "--output", str(tmp_path / "shots"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "Expected FER-2013's zip at --data" in refused.stderr.splitlines()[-1]
    assert not (tmp_path / "shots").exists()

"""Keep keras-tuner's project folder reloadable after a crash.

keras-tuner writes oracle.json, tuner0.json and trial_*/trial.json in place, so a search killed mid-write can
leave a truncated file that makes `overwrite=False` fail to reload. After each trial starts and ends, the search
keeps an atomic `.bak` copy of every such file; before reloading, `repair_project` restores unreadable files from
those copies, drops trial folders that cannot be restored (keras-tuner never recorded them in its state), and
as a last resort starts the project afresh. A trial that was merely running (the usual partial trial) is left
alone: keras-tuner puts it back in its retry queue and runs it again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ferlib.atomic import atomic_write_bytes

BACKUP_SUFFIX = ".bak"


def _state_files(project_dir: Path) -> list[Path]:
    """keras-tuner's JSON state: oracle.json, tuner*.json and trial_*/trial.json."""
    files = [project_dir / "oracle.json", *sorted(project_dir.glob("tuner*.json"))]
    return files + sorted(project_dir.glob("trial_*/trial.json"))


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def back_up_project(project_dir: str | Path) -> None:
    """Copy every readable state file to a `.bak` sibling atomically (skipping unchanged ones)."""
    for path in _state_files(Path(project_dir)):
        if not path.exists() or not _readable_json(path):
            continue
        data = path.read_bytes()
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        if not backup.exists() or backup.read_bytes() != data:
            atomic_write_bytes(backup, data)


def repair_project(project_dir: str | Path) -> list[str]:
    """Make the project reloadable; returns what was done (empty when it was fine), for the search's log."""
    project = Path(project_dir)
    if not project.is_dir():
        return []
    actions: list[str] = []
    for path in _state_files(project):
        if _readable_json(path):
            continue
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        if _readable_json(backup):
            atomic_write_bytes(path, backup.read_bytes())
            actions.append(f"restored {path.relative_to(project)} from its backup")
        elif path.name == "trial.json":
            shutil.rmtree(path.parent)
            actions.append(f"removed {path.parent.name}, whose trial.json was unreadable")
        else:
            archived = project.with_name(f"{project.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
            project.rename(archived)
            return [*actions, f"{path.name} was unreadable without a backup: moved the project to {archived.name}"]
    oracle_path = project / "oracle.json"
    if oracle_path.exists():
        trial_ids = {path.parent.name[len("trial_") :] for path in project.glob("trial_*/trial.json")}
        actions += _drop_missing_trials(oracle_path, trial_ids)
    return actions


def _drop_missing_trials(oracle_path: Path, trial_ids: set[str]) -> list[str]:
    """Remove references to trials whose folders are gone from the oracle's state (else reloading fails)."""
    state = json.loads(oracle_path.read_text(encoding="utf-8"))
    ongoing = state.get("ongoing_trials", {})
    missing = {trial for trial in ongoing.values() if trial not in trial_ids}
    for key in ("start_order", "end_order", "retry_queue"):
        missing |= {trial for trial in state.get(key, []) if trial not in trial_ids}
    if not missing:
        return []
    state["ongoing_trials"] = {tuner: trial for tuner, trial in ongoing.items() if trial not in missing}
    for key in ("start_order", "end_order", "retry_queue"):
        if key in state:
            state[key] = [trial for trial in state[key] if trial not in missing]
    atomic_write_bytes(oracle_path, json.dumps(state).encode("utf-8"))
    return [f"dropped missing trials {sorted(missing)} from oracle.json"]

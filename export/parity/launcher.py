"""Start a parity worker: `python -m export.parity.worker KIND REQUEST.json REPORT.json` in a
scratch folder, so that torch's memory and llama.cpp's global state never reach the calling
process. export/parity/worker.py lists the kinds; this module imports none of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER_MODULE = "export.parity.worker"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_worker(kind: str, request: dict, *, timeout: float, label: str) -> dict | str:
    """Run the worker `kind` on `request` (its keyword arguments) in a scratch folder: the
    report dict, or one line saying how the worker failed (timed out, crashed, wrote no
    report)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(_PROJECT_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    with tempfile.TemporaryDirectory(prefix="edge-et-worker-") as tmp:
        req, rep = Path(tmp) / "request.json", Path(tmp) / "report.json"
        req.write_text(json.dumps(request))
        # cwd = the scratch folder: `-m` puts cwd first on sys.path; nothing there may shadow us.
        cmd = [sys.executable, "-m", WORKER_MODULE, kind, str(req), str(rep)]
        try:
            proc = subprocess.run(
                cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return f"{label} ran past {timeout:.0f} s"
        if proc.returncode != 0 or not rep.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"{label} exited with code {proc.returncode}: {tail[0]}"
        return json.loads(rep.read_text())

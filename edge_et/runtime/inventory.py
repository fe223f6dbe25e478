"""`edge-et list`: the bundles of the bundles home and the models of the store, with whether each
bundle's memory plan fits this machine (from the GGUF headers; nothing loads)."""

from __future__ import annotations

from pathlib import Path

from edge_et.bundle.home import bundles_home, local_bundles
from edge_et.bundle.inventory import store_models
from edge_et.errors import EdgeEtError
from edge_et.runtime.plan import plan_bundle


def _quants(bundle) -> str:
    return " + ".join(
        f"{s.role[0]}:{s.model_info.file_type}" if s.model_info is not None else s.role
        for s in bundle.stages()
    )


def inventory(*, home: Path | None = None, store: Path, mem_budget: str | None = None) -> dict:
    """{"home", "store", "bundles": [...], "models": [...]}, JSON-ready.

    Each bundle: name, path, size_bytes, quant (per stage), plan (co-resident | swap | refuse ...,
    or None when the bundle does not load), fits (bool), problem (the one-line reason it does not
    load, else None). Each model: name, path, size_bytes, quant, kind, used_by.
    """
    home = Path(home) if home is not None else bundles_home()
    bundles = []
    for local in local_bundles(home):
        row = {
            "name": local.name,
            "path": str(local.path),
            "size_bytes": local.size_bytes,
            "quant": None,
            "plan": None,
            "fits": False,
            "problem": local.problem,
        }
        if local.problem is None:
            try:
                loaded = local.load()
                row["quant"] = _quants(loaded)
                decision = plan_bundle(loaded, mem_budget=mem_budget).decision
                row.update(plan=decision, fits=decision != "refuse")
            except EdgeEtError as exc:
                row["problem"] = str(exc)
        bundles.append(row)
    models = [
        {
            "name": m.name,
            "path": str(m.path),
            "size_bytes": m.size_bytes,
            "quant": m.quant,
            "kind": m.kind,
            "used_by": list(m.used_by),
        }
        for m in store_models(store, home=home)
    ]
    return {"home": str(home), "store": str(store), "bundles": bundles, "models": models}

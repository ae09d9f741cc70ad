"""Encoding the 1,682 ml-100k item texts: keras-hub (ours) against sentence-transformers.

Both run on the same CPU in one run. The reference needs PyTorch, which the project never
depends on: point ``MTREC_REFERENCE_PYTHON`` at an interpreter that has ``torch==2.13.0`` and
``sentence-transformers`` (see tests/fixtures/make_text_reference.py); without it the reference
row is left out and the table says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import check, update_readme, write_result
from mtrec_study.datasets import load_dataset
from mtrec_study.text import TextEncoder, fetch_minilm, item_texts

REFERENCE = r"""
import json, sys, time
import torch
from sentence_transformers import SentenceTransformer
torch.set_num_threads({threads})
texts = json.load(open(sys.argv[2]))
model = SentenceTransformer(sys.argv[1], device="cpu")
model.encode(texts[:64])  # warm-up, as ours is warmed up by its first call
t = time.perf_counter()
vecs = model.encode(texts, batch_size=128, normalize_embeddings=True)
print(json.dumps({{"seconds": time.perf_counter() - t, "vectors_head": vecs[:5].tolist()}}))
"""


def main() -> dict:
    texts = list(item_texts(load_dataset("ml-100k", log=None).items))
    folder = fetch_minilm()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        enc = TextEncoder(folder)
        enc.store = None
        enc.encode(texts[:64])  # warm-up: builds the graph for the common shapes
        t = time.perf_counter()
        ours = enc.encode(texts)
        rows.append({"impl": "mtrec_study (keras-hub, TF graph)", "run": "uncached", "texts": len(texts),
                     "seconds": time.perf_counter() - t})
        from mtrec_study.text import EmbeddingStore

        enc.store = EmbeddingStore(Path(tmp) / "store")
        enc.encode(texts)
        t = time.perf_counter()
        enc.encode(texts)
        rows.append({"impl": "mtrec_study (keras-hub, TF graph)", "run": "cached (second run)", "texts": len(texts),
                     "seconds": time.perf_counter() - t})
        ref_python = os.environ.get("MTREC_REFERENCE_PYTHON")
        cos = None
        if ref_python:
            (Path(tmp) / "texts.json").write_text(json.dumps(texts))
            script = REFERENCE.format(threads=os.cpu_count())
            proc = subprocess.run([ref_python, "-c", script, str(folder), str(Path(tmp) / "texts.json")],
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode == 0:
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append({"impl": "sentence-transformers (PyTorch)", "run": "uncached", "texts": len(texts),
                             "seconds": out["seconds"]})
                ref = np.asarray(out["vectors_head"])
                cos = float(np.min(np.sum(ref * ours[:5], axis=1)))
            else:
                print("reference run failed:", proc.stderr[-500:])
    for r in rows:
        print(r, flush=True)
    by = {(r["impl"].split(" ")[0], r["run"]): r["seconds"] for r in rows}
    checks = {"encode 1,682 ml-100k items, s (target < 3)": check(by[("mtrec_study", "uncached")],
                                                                   by[("mtrec_study", "uncached")] < 3),
              "cached second run, s (target < 0.2)": check(by[("mtrec_study", "cached (second run)")],
                                                           by[("mtrec_study", "cached (second run)")] < 0.2)}
    if ("sentence-transformers", "uncached") in by:
        ratio = by[("sentence-transformers", "uncached")] / by[("mtrec_study", "uncached")]
        checks["sentence-transformers time / ours (same CPU, same run)"] = check(ratio, True)
        checks["cosine of ours to the reference, first 5 items (min)"] = check(cos, cos >= 0.9999, "{:.7f}")
    else:
        checks["reference (set MTREC_REFERENCE_PYTHON to a torch + sentence-transformers interpreter)"] = {
            "value": "not run", "pass": False}
    write_result("text", rows, checks, "batch 128, texts sorted by length; ours warmed up on 64 texts first")
    update_readme("text", pd.DataFrame(rows), checks)
    return {"rows": rows, "checks": checks}


if __name__ == "__main__":
    main()

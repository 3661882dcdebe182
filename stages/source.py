"""Stage `source`: fingerprint the files under data.root into data/source.json (prepare's dependency).

dvc.yaml marks it always_changed: it runs on every `dvc repro`, and prepare re-runs only when the
fingerprint differs from the one it was last run with (pipeline/source.py).
"""
import json
import time

from pipeline.layout import SOURCE
from pipeline.params import load_params, section
from pipeline.source import changes, source_fingerprint
from pipeline.store import write_json
from stages._cli import run


def main() -> None:
    root = section(load_params(), "data")["root"]
    started = time.perf_counter()
    record = {"root": root, **source_fingerprint(root)}
    seconds = time.perf_counter() - started
    before = _previous()
    write_json(SOURCE, record)
    if root is None:
        print("source: no data.root (an embedded data set): constant fingerprint")
        return
    print(f"source: {record['files']} files, {record['bytes']:,} bytes under data.root {root} "
          f"(fingerprint {record['digest'][:12]}, {seconds:.2f} s)")
    if before is not None and before.get("digest") != record["digest"]:
        print("source changed since the last run: " + "; ".join(changes(before, record) or ["data.root moved"]))


def _previous() -> dict | None:
    """The last run's fingerprint (dvc.yaml keeps the file: persist), if it is readable."""
    try:
        return json.loads(SOURCE.read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    run(main)

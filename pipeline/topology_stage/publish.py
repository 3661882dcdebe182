"""Finishing the stage: check that every shard is done, combine the training statistics and
publish the staged stores into the output (pipeline.staging.publish_store), stats.json last.
The staging folder stays intact until every split and stats.json are published, so a kill while
publishing (after which DVC deletes the half-made output) costs only the publishing."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline import locations
from pipeline.errors import TopologyError
from pipeline.staging import Staging, publish_store
from pipeline.store import SPLITS, split_path, write_json
from pipeline.topology.filtrations import channel_labels
from pipeline.topology_stage.checks import check_yield
from pipeline.topology_stage.planning import shard_counts, shard_unit
from pipeline.topology_stage.statistics import channel_mean_std, read_sums


def finish(sources: dict[str, zarr.Group], staging: Staging, out_dir: Path | str, modality: str, engine: str,
           recipe: dict[str, Any], shape: tuple[int, int, int], dtype: str,
           summary: dict[str, Any]) -> dict[str, Any]:
    """Check every shard is done, combine the statistics and publish the stores, stats.json
    last; remove the staging folder. Returns the stage's summary."""
    shards = shard_counts(sources)
    missing = [shard_unit(split, i) for split, n in shards.items() for i in range(n)
               if not staging.is_done(shard_unit(split, i))]
    if missing:  # every task returned, so this is a bug, never a state to publish
        raise TopologyError(f"{staging.root}: shards {missing[:5]} have no done marker after the run")
    parts = read_sums(staging, shards["train"])
    labels = channel_labels(recipe, sources["train"]["x"].shape[-1], modality)
    check_yield(parts, modality, recipe, labels)  # a recipe that yields nothing is never published
    mean, std = channel_mean_std(parts)
    if not np.isfinite(mean + std).all():
        raise TopologyError(f"{split_path(staging.root, 'train')}: non-finite persistence-image statistics")
    attrs = {"modality": modality, "engine": engine, "recipe": recipe, "mean": mean, "std": std,
             "classes": sources["train"].attrs["classes"], "dataset": sources["train"].attrs["dataset"]}
    locations.makedirs(out_dir)
    locations.remove(locations.join(out_dir, "stats.json"))  # written last: the mark of a complete output
    for split in SPLITS:
        publish_store(split_path(staging.root, split), split_path(out_dir, split), {**attrs, "split": split})
    write_json(locations.join(out_dir, "stats.json"), {"mean": mean, "std": std, "shape": list(shape),
                                                       "modality": modality, "engine": engine, "recipe": recipe})
    staging.discard()
    return {**attrs, **summary, "shape": list(shape), "dtype": dtype}

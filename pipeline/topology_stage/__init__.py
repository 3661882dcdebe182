"""The topology stage: persistence images of every prepared sample, once, in parallel.

Work is split into tasks of whole shards (zarr rewrites a shard on any partial write, so a shard
has exactly one writer). Tasks run with joblib (local processes, or a Dask cluster through
joblib's Dask backend) and write straight into stores that the parent created once.

Resumable (pipeline.staging): stores are filled in a staging folder outside the stage's DVC
output (DVC deletes outputs before a stage runs), stamped with the identity of the recipe and of
the input stores (`staging_identity`), so work from another recipe or input is never reused. A
shard is a unit of work: it counts as done only once its marker exists, written atomically after
the shard itself. When every shard is done the stores are published into the output folder and
the staging folder is removed.

Speed: the parent never loads the engine; the workers start once and load it (numba's cached
kernels, the grid tables) while the parent hashes its inputs. Within a task a thread writes each
shard while the next one is computed. A training shard's per-channel sums (float64) are written
to the staging folder before its marker, and the parent adds them in shard order for the mean
and std (docs/topology.md, "The stage against its engine").

Locations (pipeline.locations): the prepared, output and staging folders are local paths or
fsspec URLs. Local paths are made absolute before they reach a task (a worker's current folder
need not be the stage's). A URL output's default staging folder is `<out_dir>.staging`, beside
it, where a cluster's workers reach it too.

The modules, one job each:

- ``blocks``: persistence images of a block of samples (the engine calls), ``pi_shape``
- ``task``: a worker's task: compute whole shards, write them, mark them done
- ``planning``: the output skeletons and the unfinished shards cut into tasks
- ``backends``: joblib's local processes or a Dask cluster
- ``statistics``: the training shards' sums and the per-channel mean and std
- ``publish``: the finished stores into the output, stats.json last
- ``driver``: ``compute_topology``, the entry point (stages/topology.py)

Patch a name where it is looked up (``blocks.compute_block``, ``publish.publish_store``), not
the re-exports below.
"""
from pipeline.topology_stage.backends import parallel_backend
from pipeline.topology_stage.blocks import compute_block, pi_shape, recipe_for
from pipeline.topology_stage.driver import compute_topology, staging_identity
from pipeline.topology_stage.planning import task_size
from pipeline.topology_stage.statistics import channel_mean_std, shard_sums

__all__ = ["compute_topology", "compute_block", "pi_shape", "recipe_for", "staging_identity",
           "parallel_backend", "task_size", "channel_mean_std", "shard_sums"]

"""Stage `topology`: persistence images of every prepared sample into data/topology/{train,test}.zarr."""
from pipeline import layout
from pipeline.params import load_params, section
from pipeline.topology_job import compute_topology
from stages._cli import run


def main() -> None:
    summary = compute_topology(layout.PREPARED, layout.TOPOLOGY, section(load_params(), "topology"))
    print(f"topology: {summary['samples_computed']} samples -> {summary['shape']} persistence images "
          f"in {summary['seconds']:.1f} s (engine {summary['engine']})")


if __name__ == "__main__":
    run(main)

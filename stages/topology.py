"""Stage `topology`: persistence images of every prepared sample into data/topology/{train,test}.zarr,
and the figure data/plots/persistence_images.png of a few test samples beside their PIs."""
from pipeline.layout import PLOTS
from pipeline.params import load_params, section
from pipeline.runs import PREPARED, TOPOLOGY
from pipeline.topology.figure import draw_from_stores
from pipeline.topology_job import compute_topology
from stages._cli import run

FIGURE = PLOTS / "persistence_images.png"


def main() -> None:
    summary = compute_topology(PREPARED, TOPOLOGY, section(load_params(), "topology"))
    print(f"topology: {summary['samples_computed']} samples -> {summary['shape']} persistence images "
          f"in {summary['seconds']:.1f} s (engine {summary['engine']})")
    print(f"topology: figure {draw_from_stores(PREPARED, TOPOLOGY, FIGURE)}")


if __name__ == "__main__":
    run(main)

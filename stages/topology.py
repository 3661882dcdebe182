"""Stage `topology`: persistence images of every prepared sample into data/topology/{train,test}.zarr,
and the figure data/plots/persistence_images.png of a few test samples beside their PIs."""
from pipeline import layout
from pipeline.params import load_section
from pipeline.topology.figure import draw_from_stores
from pipeline.topology_job import compute_topology
from stages._cli import run

FIGURE = layout.PLOTS / "persistence_images.png"


def main() -> None:
    summary = compute_topology(layout.PREPARED, layout.TOPOLOGY, load_section("topology"))
    print(f"topology: {summary['samples_computed']} samples -> {summary['shape']} {summary['dtype']} "
          f"persistence images in {summary['seconds']:.1f} s (engine {summary['engine']})")
    print(f"topology: figure {draw_from_stores(layout.PREPARED, layout.TOPOLOGY, FIGURE)}")


if __name__ == "__main__":
    run(main)

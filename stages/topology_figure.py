"""Stage `topology_figure`: data/plots/persistence_images.png, the first test sample of each of
the first classes beside its persistence images, read from data/prepared and data/topology."""
from pipeline import layout
from pipeline.params import load_params
from pipeline.titles import dataset_title
from pipeline.topology_figure import draw_from_stores
from stages._cli import run

FIGURE = layout.PLOTS / "persistence_images.png"


def main() -> None:
    params = load_params()  # the whole file, as every stage: a bad key anywhere fails before any work
    dataset = dataset_title(params.data.name, params.data.root)   # the title's data set
    print(f"topology_figure: {draw_from_stores(layout.PREPARED, layout.TOPOLOGY, FIGURE, dataset=dataset)}")


if __name__ == "__main__":
    run(main)

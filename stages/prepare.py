"""Stage `prepare`: decode the data set named in params (`data`) into data/prepared/{train,test}.zarr."""
from pipeline.layout import PREPARED
from pipeline.params import load_params, section
from pipeline.prepare import prepare
from stages._cli import run


def main() -> None:
    summary = prepare(section(load_params(), "data"), PREPARED)
    sizes = ", ".join(f"{s} {v['n']} x {v['shape']}" for s, v in summary["splits"].items())
    print(f"prepared {summary['dataset']} ({summary['modality']}, {len(summary['classes'])} classes): {sizes}")


if __name__ == "__main__":
    run(main)

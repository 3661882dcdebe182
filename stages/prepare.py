"""Stage `prepare`: decode the data set named in params (`data`) into data/prepared/{train,test}.zarr."""
from pipeline.layout import PREPARED
from pipeline.params import load_section
from pipeline.prepare import prepare
from stages._cli import run


def main() -> None:
    summary = prepare(load_section("data"), PREPARED)
    sizes = ", ".join(f"{s} {v['n']} x {v['shape']}" for s, v in summary["splits"].items())
    print(f"prepared {summary['dataset']} ({summary['modality']}, {len(summary['classes'])} classes): {sizes}")


if __name__ == "__main__":
    run(main)

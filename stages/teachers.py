"""Stage `teachers`: each frozen teacher run once over the training batches of every epoch;
its logits and batch maps stored in data/teachers/train.zarr for the distill stages."""
from pipeline.params import load_params
from pipeline.teacher_cache import cache_teachers
from stages._cli import run


def main() -> None:
    summary = cache_teachers(load_params())
    if summary["cached"]:
        needs = ", ".join(f"{k}: logits{''.join(', ' + m for m in kinds)}" for k, kinds in summary["needs"].items())
        print(f"teachers: {summary['n']} samples x {summary['map_epochs'] or 1} epochs cached "
              f"({needs}), {summary['bytes'] / 2**20:.1f} MiB")
    else:
        print(f"teachers: no cache ({summary['reason']}); the distill stages run the teachers")


if __name__ == "__main__":
    run(main)

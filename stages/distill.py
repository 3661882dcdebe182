"""Stage `distill@<method>`: a student distilled from the frozen teachers by one method."""
import argparse

from pipeline.distill_runs import distill
from pipeline.training.loop import describe
from stages._cli import report, run, training_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("method", help="a name from distill.methods (kd, sp, tgd, tpkd, ...)")
    method = parser.parse_args().method
    report(describe(distill(method, training_params("stages.distill")), method))


if __name__ == "__main__":
    run(main)

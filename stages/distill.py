"""Stage `distill@<method>`: a student distilled from the frozen teachers by one method."""
import argparse

from pipeline.params import load_params
from pipeline.runs import distill
from stages._cli import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("method", help="a name from distill.methods (kd, sp, tgd, tpkd, ...)")
    print(distill(parser.parse_args().method, load_params()))


if __name__ == "__main__":
    run(main)

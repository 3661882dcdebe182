"""Stage `train_teacher@{image,topology}`: teacher 1 on raw inputs or teacher 2 on persistence images."""
import argparse

from pipeline.distill import TEACHER_INPUTS
from pipeline.runs import train_teacher
from pipeline.training.loop import describe
from stages._cli import report, run, training_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(TEACHER_INPUTS))
    kind = parser.parse_args().kind
    report(describe(train_teacher(kind, training_params("stages.train_teacher")), f"teacher_{kind}"))


if __name__ == "__main__":
    run(main)

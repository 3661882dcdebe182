"""Stage `train_teacher@{image,topology}`: teacher 1 on raw inputs or teacher 2 on persistence images."""
import argparse

from pipeline.runs import TEACHER_INPUT, train_teacher
from stages._cli import report, run, training_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(TEACHER_INPUT))
    kind = parser.parse_args().kind
    report(train_teacher(kind, training_params("stages.train_teacher")))


if __name__ == "__main__":
    run(main)

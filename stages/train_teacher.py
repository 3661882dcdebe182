"""Stage `train_teacher@{image,topology}`: teacher 1 on raw inputs or teacher 2 on persistence images."""
import argparse

from pipeline.params import load_params
from pipeline.runs import TEACHER_INPUT, train_teacher
from stages._cli import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(TEACHER_INPUT))
    summary = train_teacher(parser.parse_args().kind, load_params())
    print(summary)


if __name__ == "__main__":
    run(main)

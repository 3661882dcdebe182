"""Stage `train_student`: the student from scratch (baseline and the distilled students' start)."""
from pipeline.params import load_params
from pipeline.runs import train_student
from stages._cli import run


def main() -> None:
    print(train_student(load_params()))


if __name__ == "__main__":
    run(main)

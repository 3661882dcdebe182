"""Stage `train_student`: the student from scratch (baseline and the distilled students' start)."""
from pipeline.runs import train_student
from pipeline.training.loop import describe
from stages._cli import report, run, training_params


def main() -> None:
    report(describe(train_student(training_params("stages.train_student")), "scratch"))


if __name__ == "__main__":
    run(main)

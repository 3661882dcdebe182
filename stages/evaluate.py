"""Stage `evaluate`: every trained model on the test split; metrics, figures, report, a summary."""
from pipeline.evaluation import evaluate_all
from pipeline.params import load_params
from stages._cli import run


def main() -> None:
    _, summary = evaluate_all(load_params())
    print(summary)


if __name__ == "__main__":
    run(main)

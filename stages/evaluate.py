"""Stage `evaluate`: every trained model on the test split; metrics, plots and a comparison table."""
from pipeline.params import load_params
from pipeline.report import REPORT, evaluate_all
from stages._cli import run


def main() -> None:
    evaluate_all(load_params())
    print((REPORT / "report.md").read_text())


if __name__ == "__main__":
    run(main)

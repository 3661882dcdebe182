"""Stage `method_params`: the `distill` keys each method reads, one file per method, so that
each `distill@<method>` stage depends on its own keys only (data/method_params/<method>.json)."""
from pipeline.params import load_params
from pipeline.runs import write_method_params
from stages._cli import run


def main() -> None:
    for name, values in write_method_params(load_params()).items():
        print(f"{name} reads " + ", ".join(f"distill.{k}={v}" for k, v in values.items()))


if __name__ == "__main__":
    run(main)

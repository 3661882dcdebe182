"""Stage `export`: every student (and, with export.teachers, the teachers) as a checked ONNX file."""
from pipeline.export import export_all
from pipeline.layout import export_dir
from pipeline.params import load_params
from stages._cli import run


def main() -> None:
    for record in export_all(load_params()):
        print(f"{record['model']}: exported to {export_dir(record['model']) / 'model.onnx'} "
              f"({record['size_bytes'] / 1024:.0f} KiB); onnxruntime vs PyTorch on {record['n_checked']} "
              f"test inputs: max |logit difference| {record['max_abs_logit_diff']:.2e}, "
              f"top-1 agreement {record['top1_agreement']:.2f} %")


if __name__ == "__main__":
    run(main)

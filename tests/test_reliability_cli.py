"""Every command is one line on bad input, never a traceback or the interpreter's exit noise: a
damaged teacher cache under `python -m stages.distill`, zarr reads cut short at exit, Ctrl-C,
the preset printer on broken presets, the benchmarks on missing or damaged input files."""
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.__main__ import HANDLERS
from benchmarks.__main__ import main as bench_main
from conftest import REPO, subprocess_env
from pipeline.errors import ParamsError
from pipeline.presets import main as presets_main
from pipeline.presets import preset_flags
from stages._cli import run
from test_teacher_cache import dag  # noqa: F401
from tests.cifar_fixtures import write_cifar_tarball, write_cifar_tree

AGAIN_TEACHERS = "; re-run the teachers stage (dvc repro -f teachers)"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _only_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]


# ------------------------------------------------------------------ the teacher cache, damaged
@pytest.mark.parametrize("damaged", ["gram_image/c.1.0.0.0", "zarr.json"])
def test_a_truncated_cache_file_under_stages_distill_is_one_line(dag, tmp_path, damaged):  # noqa: F811
    ws = tmp_path / "ws"
    shutil.copytree(dag, ws, symlinks=True)
    _truncate(ws / "data" / "teachers" / "train.zarr" / damaged)
    done = subprocess.run([sys.executable, "-m", "stages.distill", "tgd"], cwd=ws, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    kind = "ValueError" if damaged.startswith("gram") else "JSONDecodeError"
    if kind == "ValueError":  # a shard: read in epoch 2, the cache was the one in use
        assert "teacher outputs from data/teachers" in done.stdout and "epoch 1/2" in done.stdout
    assert _only_error_line(done.stderr) == (f"error: data/teachers/train.zarr/{damaged}: damaged "
                                             f"({kind}: truncated or edited?){AGAIN_TEACHERS}")


def test_zarr_reads_cut_short_leave_no_noise_at_exit(tmp_path):
    """Half the shards of a store truncated: the read fails while zarr's event loop still runs
    the others, which asyncio reported at exit (hundreds of lines) after the error line."""
    script = tmp_path / "damaged.py"
    script.write_text(
        "import os, sys\n"
        "import numpy as np, zarr\n"
        "from pipeline.errors import DataError\n"
        "from pipeline.store import create_array, create_group\n"
        "from stages._cli import run\n"
        "root = sys.argv[1]\n"
        "array = create_array(create_group(root, {}), 'a', (64 * 4096, 4), 'float32', 4096)\n"
        "array[...] = np.ones(array.shape, 'float32')\n"
        "for name in os.listdir(f'{root}/a'):\n"
        "    if name.startswith('c.') and int(name.split('.')[1]) % 2 == 0:\n"
        "        path = f'{root}/a/{name}'\n"
        "        data = open(path, 'rb').read()\n"
        "        open(path, 'wb').write(data[:len(data) // 2])\n"
        "def main():\n"
        "    try:\n"
        "        zarr.open_group(root, mode='r')['a'][...]\n"
        "    except ValueError:\n"
        "        raise DataError(f'{root}: damaged') from None\n"
        "run(main)\n")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "s.zarr")], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert _only_error_line(done.stderr) == f"error: {tmp_path / 's.zarr'}: damaged"


# --------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_is_one_line_and_status_130(capsys):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as info:
        run(interrupted)
    assert info.value.code == 130
    assert _only_error_line(capsys.readouterr().err) == (
        "error: interrupted (Ctrl-C); run the stage again to go on (the resumable stages resume)")


def test_sigint_to_a_stage_process_is_one_line_and_status_130(tmp_path):
    code = "import time\nfrom stages._cli import run\nprint('ready', flush=True)\nrun(lambda: time.sleep(60))\n"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert _only_error_line(err).startswith("error: interrupted (Ctrl-C)")


# ------------------------------------------------------------------------ the preset printer
@pytest.mark.parametrize("text, message", [
    ("train: {epochs: {a: 1}}\n", "{p}: train.epochs.a: train.epochs is a value in the params (2), not a section "
                                  "of keys; give train.epochs a value, not a mapping"),
    ("data: {root: {a: 1}}\n", "{p}: data.root.a: data.root is a value in the params (None), not a section of "
                               "keys; give data.root a value, not a mapping"),
    ("train: 5\n", "params.yaml + {p}: train=5: Input should be a valid dictionary or instance of TrainParams"),
    ("", "{p}: no overrides; a preset sets keys of params.yaml, e.g. train: {{epochs: 20}}"),
    ("# only a comment\n", "{p}: no overrides; a preset sets keys of params.yaml, e.g. train: {{epochs: 20}}"),
    ("train: {}\n", "{p}: train: an empty section overrides nothing; give its keys or leave it out"),
    ("data: {root: /data/my cifar}\n",
     "{p}: data.root='/data/my cifar' holds whitespace, which the shell's $(...) splits; leave data.root out "
     "of the preset and pass it by hand: -S 'data.root=/data/my cifar'"),
    (b"\xff\xfe\x00junk", "{p}: not a text (UTF-8) file; a preset is YAML"),
])
def test_a_broken_preset_is_one_line_naming_it(workspace, capsys, text, message):
    preset = Path("presets") / "x.yaml"
    preset.parent.mkdir()
    preset.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SystemExit) as info:
        presets_main([str(preset)])
    assert str(info.value.code) == "error: " + message.format(p=preset)
    assert capsys.readouterr().out == ""


def test_a_missing_preset_is_one_line(workspace):
    with pytest.raises(ParamsError, match=r"^presets/none\.yaml: preset not found$"):
        preset_flags("presets/none.yaml")


def test_a_good_preset_still_prints_its_flags(workspace):
    preset = workspace / "p.yaml"
    preset.write_text("train: {epochs: 3, milestones: [1, 2]}\ndata: {root: /data/cifar}\n")
    assert preset_flags(preset) == ["-S", "train.epochs=3", "-S", "train.milestones=[1,2]",
                                    "-S", "data.root=/data/cifar"]


# ---------------------------------------------------------------------------- the benchmarks
def test_a_damaged_tarball_is_one_line_and_status_2(tmp_path, capsys):
    tarball = write_cifar_tarball(tmp_path / "c.tar.gz", write_cifar_tree(tmp_path / "tree"))
    _truncate(tarball)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    for path in (tarball, junk):
        assert bench_main(["topology", "--n", "2", "--tar", str(path)]) == 2
        line = _only_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: {path}: not a readable tar.gz of JPEGs (")


def test_a_damaged_jpeg_or_a_missing_store_is_one_line_and_status_2(tmp_path, capsys):
    tree = write_cifar_tree(tmp_path / "tree")
    (tree / "test" / "cat" / "0000.jpg").write_bytes(b"\xff\xd8 not a JPEG")
    assert bench_main(["topology", "--n", "2", "--root", str(tree)]) == 2
    assert "0000.jpg" in _only_error_line(capsys.readouterr().err)
    assert bench_main(["topology-floor", "--prepared", str(tmp_path / "none")]) == 2
    assert _only_error_line(capsys.readouterr().err) == (
        f"error: {tmp_path / 'none' / 'train.zarr'}: no zarr store here; run the stage that produces it (dvc repro)")


def test_ctrl_c_in_a_benchmark_is_one_line_and_status_130(monkeypatch, capsys):
    def interrupted(parser, args):
        raise KeyboardInterrupt

    monkeypatch.setitem(HANDLERS, "topology", interrupted)
    assert bench_main(["topology", "--n", "2"]) == 130
    assert _only_error_line(capsys.readouterr().err) == "error: interrupted (Ctrl-C)"

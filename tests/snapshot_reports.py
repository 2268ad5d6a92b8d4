"""Snapshot what python -m compare prints and writes for the README's examples, to show a refactoring
left every report unchanged byte for byte (timing aside).

    python tests/snapshot_reports.py OUT_DIR      # run before and after the change, then: diff -r A B

Each command's stdout, stderr and exit status go to OUT_DIR/NAME.txt, its JSON report (without the
top-level "timing" entry) to OUT_DIR/NAME.json, and a golden file's arrays to OUT_DIR/NAME.npz.txt
(their sha256, the config and versions). It is a tool for a person, not a test: its outputs are not
references for anything but themselves.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMANDS = {
    "guide": [],
    "guide_as_written": ["--impl", "numpy_impl:guide_as_written"],
    "referee_exact": ["--referee", "exact"],
    "referee_fd_bug": ["--impl", "numpy_impl:guide_as_written", "--referee", "finite_differences"],
    "digits_adam": ["--data", "digits", "--layers", "64,32,10", "--activations", "relu,softmax", "--loss",
                    "categorical_crossentropy", "--optimizer", "adam", "--batch-size", "32", "--epochs", "1"],
    "free_running": ["--free-running", "--steps", "300"],
    "float32": ["--dtype", "float32", "--steps", "200"],
    "random_rmsprop": ["--data", "random", "--layers", "8,16,16,4", "--activations", "tanh,sigmoid,linear",
                       "--optimizer", "rmsprop", "--optimizer-config", '{"centered": true, "momentum": 0.5}',
                       "--batch-size", "16", "--epochs", "5", "--dtype", "float32"],
    "mae_sgd_momentum": ["--data", "random", "--layers", "5,4,2", "--activations", "relu,linear", "--loss", "mae",
                         "--optimizer", "sgd", "--optimizer-config", '{"momentum": 0.9, "nesterov": true}',
                         "--steps", "40"],
    "bce_adamw": ["--data", "random", "--layers", "6,5,1", "--activations", "tanh,sigmoid", "--loss",
                  "binary_crossentropy", "--loss-config", '{"label_smoothing": 0.1}', "--optimizer", "adamw",
                  "--steps", "30"],
    "adagrad": ["--data", "random", "--layers", "4,3,2", "--optimizer", "adagrad", "--steps", "30"],
    "bad_input": ["--steps", "0"],
    "walkthrough": ["walkthrough", "--epochs", "20"],
}


def run(args, cwd):
    out = subprocess.run([sys.executable, "-m", "compare", *args], cwd=cwd, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    return f"exit {out.returncode}\n--- stdout\n{out.stdout}--- stderr\n{out.stderr}"


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    for name, args in COMMANDS.items():
        json_path = os.path.join(out_dir, f"{name}.report.json")
        extra = [] if args[:1] == ["walkthrough"] or name == "bad_input" else ["--json", json_path]
        with open(os.path.join(out_dir, f"{name}.txt"), "w") as f:
            f.write(run(args + extra, out_dir))
        if extra and os.path.exists(json_path):
            report = json.load(open(json_path))
            report.pop("timing", None)
            with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
                json.dump(report, f, indent=1, sort_keys=True)
            os.remove(json_path)
    golden = "golden.npz"  # relative to out_dir, so that two snapshots print the same path
    steps = ["--steps", "60"]
    with open(os.path.join(out_dir, "golden.txt"), "w") as f:
        f.write(run(["record", "--out", golden, *steps], out_dir).split(" (")[0])  # the size varies with zip
        f.write(run(["check", "--golden", golden, "--impl", "numpy_impl:guide_as_written"], out_dir))
        f.write(run(["check", "--golden", golden], out_dir))
        f.write(run(["diff", golden, golden], out_dir))
    golden = os.path.join(out_dir, golden)
    import numpy as np
    with np.load(golden, allow_pickle=False) as npz, open(os.path.join(out_dir, "golden.npz.txt"), "w") as f:
        for key in sorted(npz.files):
            a = npz[key]
            f.write(f"{key} {a.dtype} {a.shape} {str(a) if a.ndim == 0 else a.tobytes().hex()[:64]}\n")
    os.remove(golden)


if __name__ == "__main__":
    main(sys.argv[1])

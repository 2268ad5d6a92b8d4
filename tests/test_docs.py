"""Every code block of docs/numpy-to-keras.md runs, and the walkthrough command agrees with it."""
import os
import re
import subprocess
import sys

from helpers import ROOT, clean_env


def test_every_code_block_of_the_migration_guide_runs_in_order():
    text = open(os.path.join(ROOT, "docs", "numpy-to-keras.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 10
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/numpy-to-keras.md", "exec"), namespace)  # each block asserts its agreement
    assert namespace["grad_diff"] > 0 and namespace["loop_diff"] < 1e-13


def test_walkthrough_command_runs_the_five_stages():
    good = subprocess.run([sys.executable, "-m", "compare", "walkthrough", "--epochs", "20"], cwd=ROOT,
                          env=clean_env(PYTHONPATH=ROOT), capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert [line.split(":")[0] for line in good.stdout.splitlines() if line.startswith("Stage")] == \
        [f"Stage {n}" for n in range(1, 6)]
    assert good.stdout.count("  agree: largest |diff|") == 5 and "all five stages agree" in good.stdout
    bad = subprocess.run([sys.executable, "-m", "compare", "walkthrough", "--impl", "numpy_impl:guide_as_written",
                          "--epochs", "20"], cwd=ROOT, env=clean_env(PYTHONPATH=ROOT), capture_output=True, text=True)
    assert bad.returncode == 1
    stages = bad.stdout.split("Stage ")[1:]
    assert "agree:" in stages[0] and "agree:" in stages[1] and "DISAGREE" in stages[2]


def test_walkthrough_takes_any_network_and_data_and_its_texts_follow_the_network(tmp_path):
    (tmp_path / "mynet.py").write_text(
        "import numpy_impl\n"
        "def make():\n"
        "    return numpy_impl.Network(numpy_impl.glorot_uniform([64, 32, 10], 0), ['tanh', 'softmax'], 0.001,\n"
        "                              loss='categorical_crossentropy', optimizer='adam')\n")
    run = subprocess.run([sys.executable, "-m", "compare", "walkthrough", "--impl", "mynet:make", "--data", "digits",
                          "--epochs", "5"], cwd=tmp_path, env=clean_env(PYTHONPATH=ROOT), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.count("  agree: largest |diff|") == 5 and "all five stages agree" in out
    assert "a1 = softmax(a0 @ W1.T + b1)" in out and "keras.losses.CategoricalCrossentropy()" in out
    assert "keras.optimizers.Adam(learning_rate)" in out and "batch_size=1797" in out
    assert "tanh(X @ W0.T + b0); predicted" not in out and "mean squared" not in out


def test_the_single_layer_guide_example_runs_and_its_flipped_kernel_is_named(tmp_path):
    """docs/layers.md's convolution, as printed, passes; with the textbook's flipped kernel it fails at the
    output with the cause the page shows."""
    text = open(os.path.join(ROOT, "docs", "layers.md"), encoding="utf-8").read()
    module = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    (tmp_path / "my_conv.py").write_text(module + '''

def make_flipped():
    layer = make_layer()
    forward, backward = layer._forward, layer._backward
    layer._forward = lambda x, ws, training, mask: conv_forward(x, ws[0][:, :, ::-1, ::-1], ws[1], {})
    def flipped_backward(dout, cache):
        dx, grads = backward(dout, cache)
        return dx, [grads[0][:, :, ::-1, ::-1], grads[1]]
    layer._backward = flipped_backward
    return layer
''')
    env = clean_env()
    env["PYTHONPATH"] = ROOT
    ok = subprocess.run([sys.executable, "-m", "compare", "layer", "--impl", "my_conv:make_layer", "--input-shape",
                         "2,3,8,8"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "verdict: OK" in ok.stdout, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[0] in text  # the header the page prints
    bad = subprocess.run([sys.executable, "-m", "compare", "layer", "--impl", "my_conv:make_flipped", "--input-shape",
                          "2,3,8,8"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "diagnosis: the kernel is flipped" in bad.stdout, bad.stdout + bad.stderr

"""Golden files never make a wrong network pass and never crash: a damaged, edited, inconsistent or foreign
file, or one recorded for another network, is one line on stderr and exit 2 (issue 12).

Damaged files are made from real recordings: loaded with np.load, one array or config field edited, saved
with np.savez; with the content hash recomputed (`rehash`), so that the consistency checks, not the hash,
must catch the edit.
"""
import io
import json
import zipfile

import numpy as np
import pytest

import numpy_impl
from compare import check, golden
from compare.cli import main
from compare.errors import InputError

ERROR = "python -m compare: error: "


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv):
    """The one stderr line of a command that must end with exit 2."""
    code, out, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(ERROR), (code, out, err)
    return lines[0]


RECORDINGS = {  # name: (steps, options)
    "guide": (50, []),
    "adam": (6, ["--data", "random", "--layers", "5,4,3", "--activations", "tanh,softmax", "--loss",
                 "categorical_crossentropy", "--optimizer", "adam", "--batch-size", "16", "--seed", "4"]),
    "rmsprop": (5, ["--data", "random", "--layers", "4,6,2", "--activations", "sigmoid,linear", "--optimizer",
                    "rmsprop", "--optimizer-config", '{"centered": true, "momentum": 0.9}', "--batch-size", "20"]),
    "adagrad": (4, ["--data", "random", "--layers", "4,5,1", "--activations", "tanh,sigmoid", "--loss",
                    "binary_crossentropy", "--optimizer", "adagrad"]),
    "relu": (4, ["--data", "random", "--layers", "6,8,3", "--activations", "relu,linear", "--loss", "mae",
                 "--optimizer", "sgd", "--optimizer-config", '{"momentum": 0.9, "nesterov": true}']),
    "adamw": (4, ["--data", "random", "--layers", "3,4,2", "--activations", "relu,softmax", "--loss",
                  "categorical_crossentropy", "--loss-config", '{"label_smoothing": 0.1}', "--optimizer", "adamw",
                  "--optimizer-config", '{"amsgrad": true}']),
    "float32": (4, ["--data", "random", "--layers", "5,4,3", "--activations", "sigmoid,softmax", "--loss",
                    "categorical_crossentropy", "--optimizer", "rmsprop", "--dtype", "float32"]),
    "diverging": (100, ["--learning-rate", "10"]),
    "diverging32": (30, ["--learning-rate", "10", "--dtype", "float32"]),  # past float32's range at step 11
}


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    folder = tmp_path_factory.mktemp("integrity")
    paths = {}
    for name, (steps, options) in RECORDINGS.items():
        paths[name] = folder / f"{name}.npz"
        assert main(["record", "--out", str(paths[name]), "--steps", str(steps), *options]) == 0
    return paths


def arrays_of(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: v.copy() for k, v in f.items()}


def edited(src, dst, edit, rehash=True):
    """dst: src with `edit(arrays)` applied; with its content hash recomputed unless rehash is False."""
    arrays = arrays_of(src)
    edit(arrays)
    if rehash and "sha256" in arrays:
        arrays["sha256"] = np.array(golden.content_hash(arrays))
    np.savez(dst, **arrays)
    return dst


def config_edit(change):
    """An edit of the config JSON: change(config) mutates the parsed object."""
    def edit(arrays):
        config = json.loads(str(arrays["config"]))
        change(config)
        arrays["config"] = np.array(json.dumps(config))
    return edit


def at(name, index, value):
    def edit(arrays):
        arrays[name][index] = value
    return edit


# --- legitimate recordings load and pass ------------------------------------------------------------
@pytest.mark.parametrize("name", ["guide", "adam", "rmsprop", "adagrad", "relu", "adamw", "float32"])
def test_legitimate_recordings_load_and_pass(capsys, rec, name):
    reference = golden.GoldenReference(rec[name])
    assert reference.notes == [] and reference.config["steps"] == RECORDINGS[name][0]
    code, out, err = run(capsys, "check", "--golden", rec[name], "-q")
    assert (code, err) == (0, "") and "verdict: OK" in out


@pytest.mark.parametrize("name", ["diverging", "diverging32"])
def test_a_recording_of_a_diverging_run_loads_and_fails_as_diverged(capsys, rec, name):
    arrays = arrays_of(rec[name])
    assert not np.isfinite(arrays["loss"]).all() and not np.isfinite(arrays["z0"]).all()
    assert golden.GoldenReference(rec[name]).config["steps"] == RECORDINGS[name][0]
    code, out, _ = run(capsys, "check", "--golden", rec[name])
    assert code == 4 and "both sides diverged alike" in out


def test_record_writes_format_v2_with_the_content_hash_of_its_arrays(rec):
    arrays = arrays_of(rec["guide"])
    assert str(arrays["format"]) == golden.FORMAT and golden.FORMAT.endswith("v2")
    assert str(arrays["sha256"]) == golden.content_hash(arrays) and len(str(arrays["sha256"])) == 64


# --- 1. non-finite values where the recording could not have had them ---------------------------------
@pytest.mark.parametrize("name, index, fragment", [
    ("z1", (7, 0), "z1[7, 0] (step 2) is nan"),   # once made the tolerance NaN and let a gradient 55 off pass
    ("z0", (0, 1), "z0[0, 1] (step 0) is inf"),
    ("a0", (4, 0), "a0[4, 0]"),
    ("loss", 3, "loss[3] (step 3) is nan"),
    ("w2", (5, 0, 1), "w2[5]"),
    ("g0", (3, 1, 2), "g0[3][1, 2] (step 3) is nan"),
    ("w0", (0, 0, 0), "initial weights w0[0]"),
    ("X", (1, 1), "X holds nan"),
    ("y", (2, 0), "y holds inf"),
])
def test_nonfinite_values_that_the_recording_could_not_hold_are_refused(capsys, rec, tmp_path, name, index, fragment):
    value = np.inf if "inf" in fragment else np.nan
    path = edited(rec["guide"], tmp_path / "nan.npz", at(name, index, value))
    assert fragment in refused(capsys, "check", "--golden", path)


def test_a_nan_planted_in_a_finite_step_of_a_diverging_recording_is_refused(capsys, rec, tmp_path):
    path = edited(rec["diverging"], tmp_path / "nan.npz", at("z1", (30, 0), np.nan))
    assert "z1[30, 0] (step 10) is nan" in refused(capsys, "check", "--golden", path)


def test_a_nan_pre_activation_is_refused_before_any_network_is_compared(rec, tmp_path):
    # such a NaN made the tolerance NaN, and a gradient 55 off passed
    path = edited(rec["guide"], tmp_path / "nan.npz", at("z0", (0, 0), np.nan))
    with pytest.raises(InputError, match=r"z0\[0, 0\] \(step 0\) is nan"):
        golden.GoldenReference(str(path))


# --- 2. files that lie: every value is recomputed from the file's own earlier values ----------------------
def scaled(name, factor, rows=slice(None)):
    def edit(arrays):
        arrays[name][rows] *= factor
    return edit


@pytest.mark.parametrize("recording, edit, fragment", [
    ("guide", scaled("z0", 1e6), "z0[0, 0] (step 0)"),   # once accepted, and it widened the tolerances
    ("guide", scaled("z1", 1 + 1e-9, slice(60, None)), "z1[60, 0] (step 20)"),
    ("guide", scaled("a0", 1 + 1e-9, slice(9, 12)), "a0[9, 0] (step 3)"),
    ("guide", scaled("a1", 1 + 1e-15), "a1[0, 0] (step 0)"),  # linear: a = z bit for bit
    ("relu", at("a0", (5, 0), 1e-3), "a0[5, 0]"),              # relu: a = max(z, 0) bit for bit
    ("guide", scaled("loss", 1 + 1e-9, slice(10, None)), "loss[10]"),
    ("adam", scaled("loss", 1 + 1e-9), "loss[0]"),
    ("guide", scaled("w2", 1 + 1e-9, slice(31, 32)), "w2[31]"),
    ("guide", scaled("w0", 1 + 1e-9, slice(1, None)), "w0[1]"),
    ("guide", scaled("g1", 1 + 1e-9, slice(5, 6)), "g1[5]["),
    ("adam", scaled("g0", 1 + 1e-9, slice(2, 3)), "g0[2][0, 0] (step 2)"),
    ("adam", scaled("g2", 2.0), "g2[0][0, 0] (step 0)"),  # Adam's normalised update hardly shows it
    ("adamw", scaled("w3", 1 + 1e-9, slice(2, 3)), "w3[2]"),
    ("rmsprop", scaled("w1", 1 + 1e-9, slice(4, 5)), "w1[4]"),
    ("adagrad", scaled("w2", 1 + 1e-9, slice(3, 4)), "w2[3]"),
    ("relu", scaled("w0", 1 + 1e-9, slice(2, 3)), "w0[2]"),
    ("float32", scaled("z1", 1 + 1e-4, slice(64, None)), "z1[64, 0] (step 1)"),  # float32 bounds: u = 2⁻²⁴
    ("float32", scaled("w0", 1 + 1e-4, slice(2, 3)), "w0[2]"),
    ("float32", scaled("g1", 1 + 1e-3), "g1[0]"),
    ("guide", config_edit(lambda c: c["spec"].update(activations=["relu", "linear"])), "relu(z0)"),
    ("guide", config_edit(lambda c: c["spec"].update(learning_rate=0.002)), "w0[1]"),
    ("guide", config_edit(lambda c: c["spec"].update(loss="mae")), "loss[0]"),
    ("adam", config_edit(lambda c: c["spec"].update(optimizer="adamw")), "w0[1]"),
    ("adam", config_edit(lambda c: c["spec"]["optimizer_config"].update(beta_1=0.8)), "w0[1]"),
    ("rmsprop", config_edit(lambda c: c["spec"]["optimizer_config"].update(centered=False)), "w0[1]"),
    ("adamw", config_edit(lambda c: c["spec"]["loss_config"].update(label_smoothing=0.2)), "loss[0]"),
])
def test_values_inconsistent_with_the_rest_of_the_file_are_refused(capsys, rec, tmp_path, recording, edit, fragment):
    path = edited(rec[recording], tmp_path / "lie.npz", edit)
    line = refused(capsys, "check", "--golden", path)
    assert "damaged golden file" in line and fragment in line


def test_a_network_declaring_relu_is_not_checked_against_a_file_recorded_with_tanh(capsys, rec, tmp_path, monkeypatch):
    (tmp_path / "relu_guide.py").write_text(
        "import numpy_impl\n"
        "def make():\n"
        "    return numpy_impl.Network(numpy_impl.seed_weights(), ['relu', 'linear'], 0.001)\n")
    monkeypatch.chdir(tmp_path)
    line = refused(capsys, "check", "--golden", rec["guide"], "--impl", "relu_guide:make")
    assert 'recorded for activations ["tanh", "linear"], but the network checked declares activations ["relu", ' \
        '"linear"]' in line


# --- 3. the content hash ------------------------------------------------------------------------------
def test_an_edit_after_recording_is_caught_by_the_content_hash(capsys, rec, tmp_path):
    # one ulp in z0: within every rounding bound, so only the hash can tell
    path = edited(rec["guide"], tmp_path / "ulp.npz",
                  lambda a: a.__setitem__("z0", np.nextafter(a["z0"], np.inf)), rehash=False)
    assert "was edited after it was recorded (content hash" in refused(capsys, "check", "--golden", path)
    assert "was edited after it was recorded" in refused(capsys, "diff", rec["guide"], path)


def test_a_hash_that_is_not_a_string_or_missing_is_refused(capsys, rec, tmp_path):
    line = refused(capsys, "check", "--golden", edited(rec["guide"], tmp_path / "h.npz", at("sha256", (), "0" * 64),
                                                       rehash=False))
    assert "content hash" in line
    assert "missing arrays ['sha256']" in refused(capsys, "check", "--golden",
                                                  edited(rec["guide"], tmp_path / "m.npz", lambda a: a.pop("sha256")))


def v1(arrays):
    arrays.pop("sha256")
    arrays["format"] = np.array(golden.FORMAT_V1)


def test_a_v1_file_still_loads_with_a_note_that_edits_cannot_be_detected(capsys, rec, tmp_path):
    path = edited(rec["guide"], tmp_path / "v1.npz", v1)
    reference = golden.GoldenReference(path)
    assert len(reference.notes) == 1
    assert "edits made to it after it was recorded cannot be detected" in reference.notes[0]
    code, _, _ = run(capsys, "check", "--golden", path, "--json", tmp_path / "r.json", "-q")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and sum("cannot be detected" in n for n in report["notes"]) == 1


def test_a_v1_file_is_still_checked_for_consistency(capsys, rec, tmp_path):
    path = edited(rec["guide"], tmp_path / "v1.npz", lambda a: (v1(a), scaled("z1", 1e6)(a)))
    assert "z1[0, 0] (step 0)" in refused(capsys, "check", "--golden", path)


# --- 4. a file damaged in one field: one line, exit 2 -----------------------------------------------------
def drop(key):
    return config_edit(lambda c: c.pop(key))


def spec_set(**fields):
    return config_edit(lambda c: c["spec"].update(fields))


def set_config(**fields):
    return config_edit(lambda c: c.update(fields))


def put(name, value):
    def edit(arrays):
        arrays[name] = value(arrays[name]) if callable(value) else value
    return edit


@pytest.mark.parametrize("edit, fragment", [
    (at("rows", 5, 3), "rows[5] is 3, outside the 3 rows of X"),
    (at("rows", 0, -1), "rows[0] is -1"),
    (put("rows", lambda r: r.astype(float)), "array rows has dtype float64"),
    (drop("batch_size"), "config lacks batch_size"),
    (spec_set(activations=["swish", "linear"]), "config spec.activations must be names from"),
    (spec_set(activations=["tanh"]), "config spec.activations must be a list of 2 activation names"),
    (spec_set(activations=["softmax", "linear"]), "config spec.activations must be free of softmax but on the last"),
    (spec_set(sizes=[3, 0, 1]), "config spec.sizes must be a list of at least two integers > 0"),
    (spec_set(sizes="3,2,1"), "config spec.sizes"),
    (spec_set(loss="hinge"), "config spec.loss must be one of"),
    (spec_set(optimizer="lamb"), "config spec.optimizer must be one of"),
    (spec_set(optimizer_config={"momentum": 2.0}), "optimizer_config option 'momentum'"),
    (spec_set(optimizer_config={"beta_1": 0.9}), "optimizer_config has unknown option 'beta_1'"),
    (spec_set(loss_config=[1]), "loss_config must be a dict"),
    (spec_set(learning_rate=-0.001), "config spec.learning_rate must be a finite number > 0"),
    (spec_set(learning_rate=float("nan")), "config spec.learning_rate must be a finite number > 0; received nan"),
    (spec_set(learning_rate=True), "config spec.learning_rate"),
    (config_edit(lambda c: c["spec"].pop("loss")), "config spec lacks loss"),
    (config_edit(lambda c: c["spec"].update(extra=1)), "config spec has unknown keys extra"),
    (set_config(steps=0), "config steps must be an integer > 0; received 0"),
    (set_config(steps=-3), "config steps must be an integer > 0"),
    (set_config(steps="50"), "config steps must be an integer > 0; received '50'"),
    (set_config(steps=49), "array row_offsets has dtype int64 and shape (51,); expected integers of shape (50,)"),
    (set_config(batch_size=2.5), "config batch_size must be an integer > 0"),
    (set_config(batch_size=2), "row_offsets"),
    (set_config(dtype="float16"), "config dtype must be one of float64, float32"),
    (set_config(backend="mxnet"), "config backend must be one of"),
    (set_config(computed_dtype="float32"), "config computed_dtype must be float64 for dtype float64 on tensorflow"),
    (set_config(dtype="float32"), "config computed_dtype must be float32 when dtype is float32"),
    (set_config(seed=-1), "config seed must be an integer ≥ 0"),
    (set_config(notes="none"), "config notes must be a list of strings"),
    (put("config", np.array('[{"spec": 1}]')), 'config must be a JSON object; received [{"spec": 1}]'),
    (put("config", np.array("{not json")), "config is not JSON"),
    (put("config", np.ones(3)), "config must be a JSON string; received an array of dtype float64"),
    (put("versions", np.array("[1, 2]")), "versions must be a JSON object"),
    (put("w0", lambda w: w[:, :, :2]), "array w0 has dtype float64 and shape (51, 2, 2); expected float64 of shape "
                                       "(51, 2, 3)"),
    (put("g3", lambda g: g[:-1]), "array g3 has dtype float64 and shape (49, 1)"),
    (put("z1", lambda z: z[:, :, None]), "array z1"),
    (put("loss", lambda loss: loss[:, None]), "array loss has dtype float64 and shape (50, 1)"),
    (put("loss", lambda loss: loss.astype(np.float32)), "array loss has dtype float32"),
    (put("X", lambda x: x[:, :2]), "array X has dtype float64 and shape (3, 2); expected float64 of shape (3, 3)"),
    (put("y", lambda y: y[:2]), "array y has dtype float64 and shape (2, 1); expected float64 of shape (3, 1)"),
    (put("row_offsets", lambda o: o[::-1].copy()), "row_offsets"),
    (at("row_offsets", 2, 3), "row_offsets"),   # 0, 3, 3, ...: an empty batch
    (at("row_offsets", 0, 1), "row_offsets"),
    (put("extra", np.ones(2)), "holds arrays ['extra'] that no recording of this network writes"),
    (lambda a: a.pop("g1"), "missing arrays ['g1']"),
    (put("format", np.array("numpy-keras-compare golden trajectory v9")), "not a golden trajectory of this tool"),
    (put("format", np.ones(2)), "not a golden trajectory of this tool"),
])
def test_a_file_damaged_in_one_field_is_one_line_and_exit_2(capsys, rec, tmp_path, edit, fragment):
    path = edited(rec["guide"], tmp_path / "damaged.npz", edit)
    line = refused(capsys, "check", "--golden", path)
    assert fragment in line


@pytest.mark.parametrize("content, fragment", [
    ("npy", "is not a golden .npz file (received a single .npy array)"),
    (b"not a zip at all", "is not a golden .npz file (received a file that begins with b'not a zi', which is never"),
    ("forged", "declares shape"),
    ("directory", "no golden file"),
])
def test_files_that_are_no_npz_archive_are_one_line_and_exit_2(capsys, rec, tmp_path, content, fragment):
    path = tmp_path / "g.npz"
    if content == "npy":
        path = tmp_path / "g.npy"
        np.save(path, np.ones(3))
    elif content == "forged":  # a member whose header declares 75 GiB, followed by 64 bytes
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (100_000, 100_000)})
        with zipfile.ZipFile(path, "w") as archive:
            for name, value in arrays_of(rec["guide"]).items():
                data = io.BytesIO()
                np.save(data, value)
                archive.writestr(f"{name}.npy", header.getvalue() + b"\0" * 64 if name == "X" else data.getvalue())
    elif content == "directory":
        path.mkdir()
    else:
        path.write_bytes(content)
    assert fragment in refused(capsys, "check", "--golden", path)


# --- 5. a file recorded for another network ---------------------------------------------------------------
@pytest.mark.parametrize("field, value, shown", [
    ("sizes", [3, 4, 1], "[3, 4, 1]"),
    ("activations", ["relu", "linear"], '["relu", "linear"]'),
    ("learning_rate", 0.002, "0.002"),
    ("loss", "mae", "'mae'"),
    ("loss_config", {"label_smoothing": 0.1}, '"label_smoothing": 0.1'),
    ("optimizer", "adam", "'adam'"),
    ("optimizer_config", {"momentum": 0.5}, '"momentum": 0.5'),
])
def test_verify_names_the_field_and_both_values(rec, field, value, shown):
    reference = golden.GoldenReference(rec["guide"])
    spec = {**reference.config["spec"], field: value}
    if field == "optimizer":
        spec["optimizer_config"] = {}
    with pytest.raises(InputError) as caught:
        reference.verify(spec)
    message = str(caught.value)
    assert f"recorded for {field} " in message and shown in message and "\n" not in message
    reference.verify({**reference.config["spec"], "optimizer_config": {"momentum": 0.0}})  # defaults are the same


def test_check_from_the_command_line_refuses_a_network_of_other_sizes(capsys, rec, tmp_path, monkeypatch):
    (tmp_path / "wide_guide.py").write_text(
        "import numpy_impl\n"
        "def make():\n"
        "    return numpy_impl.Network(numpy_impl.glorot_uniform([3, 4, 1], 0), ['tanh', 'linear'], 0.001)\n")
    monkeypatch.chdir(tmp_path)
    line = refused(capsys, "check", "--golden", rec["guide"], "--impl", "wide_guide:make")
    assert "recorded for sizes [3, 2, 1], but the network checked declares sizes [3, 4, 1]" in line


def test_check_from_python_refuses_a_network_of_other_activations(rec):
    network = numpy_impl.Network(numpy_impl.seed_weights(), ["relu", "linear"], 0.001)
    with pytest.raises(InputError, match="recorded for activations"):
        check(network, *numpy_impl.seed_data(), golden=golden.GoldenReference(rec["guide"]))


# --- 6. diff compares every array, and names what differs ---------------------------------------------
def test_diff_sees_a_change_in_the_pre_activations_alone(capsys, rec, tmp_path):
    def one_ulp(arrays):  # z0 of step 7 moved by one ulp: consistent with every bound, only z0 differs
        arrays["z0"][21:24] = np.nextafter(arrays["z0"][21:24], np.inf)
    path = edited(rec["guide"], tmp_path / "z.npz", one_ulp)
    code, out, _ = run(capsys, "diff", rec["guide"], path)
    assert code == 1 and "first differ at step 7 of 50; changed: z0" in out
    row = [line.split() for line in out.splitlines() if line.strip().startswith("pre-activation")][0]
    assert row[-1] == "z0" and float(row[1]) > 0


def test_diff_names_gradients_as_reports_do(capsys, rec, tmp_path):
    def one_ulp(arrays):
        arrays["g1"][12] = np.nextafter(arrays["g1"][12], np.inf)
    code, out, _ = run(capsys, "diff", rec["guide"], edited(rec["guide"], tmp_path / "g.npz", one_ulp))
    row = [line.split() for line in out.splitlines() if line.strip().startswith("gradient")][0]
    assert code == 1 and row[-1] == "db0" and "first differ at step 12 of 50; changed: db0" in out


def test_diff_of_a_file_with_itself_is_identical(capsys, rec):
    code, out, _ = run(capsys, "diff", rec["adam"], rec["adam"])
    assert code == 0 and "identical: all 6 steps are bit for bit the same" in out


def test_diff_refuses_other_configurations_naming_the_fields_and_both_values(capsys, rec):
    line = refused(capsys, "diff", rec["guide"], rec["adam"])
    assert "record different configurations: spec.sizes [3, 2, 1] vs [5, 4, 3]" in line
    assert "spec.optimizer 'sgd' vs 'adam'" in line and "batch_size 3 vs 16" in line
    line = refused(capsys, "diff", rec["guide"], rec["diverging"])
    assert "spec.learning_rate 0.001 vs 10.0" in line and "steps 50 vs 100" in line


def test_diff_refuses_other_data(capsys, rec, tmp_path):
    other = tmp_path / "other.npz"
    steps, options = RECORDINGS["adam"]
    assert main(["record", "--out", str(other), "--steps", str(steps), *options[:-1], "5"]) == 0  # --seed 5
    line = refused(capsys, "diff", rec["adam"], other)
    assert "record different configurations: X[0, 0]" in line and "y[" in line

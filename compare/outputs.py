"""The report files: JSON, JUnit XML and a PNG plot. One table, OUTPUTS, that both command lines (the
check and `check --golden`) loop over: adding a format is a writer and an entry here.

Each entry: the option (--NAME PATH), its metavar and help, whether it needs the per-step history, and
write(path, report). Every file is written through report.atomic_write ("-" is standard output).
"""
import json
import xml.etree.ElementTree as ET  # noqa: N817

import numpy as np

from .names import QUANTITIES
from .report import atomic_write, summary


# --- JSON ------------------------------------------------------------------------------------------
def write_json(path, report):
    """Write the report as JSON; non-finite history values become null."""
    atomic_write(path, json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")


def _finite(value):
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# --- JUnit XML: a testcase per quantity ---------------------------------------------------------------
def junit_xml(report):
    """A <testsuite> with a testcase per quantity; the failing one carries the mismatch report."""
    net = report["network"]
    name = f"compare.{'-'.join(map(str, net['layers']))}.{report['backend']}.{report['dtype']}"
    failing = (report["first_mismatch"] or report["nonfinite"] or {}).get("quantity")
    incomplete = report.get("verdict") == "incomplete"
    suite = ET.Element("testsuite", name=name, tests=str(len(QUANTITIES) + 1), failures="0" if report["ok"] else "1",
                       errors="0", time=f"{report['timing']['total_s']:.3f}")
    props = ET.SubElement(suite, "properties")
    for key in ("steps_checked", "steps_requested", "mode", "computed_dtype"):
        ET.SubElement(props, "property", name=key, value=str(report[key]))
    text = summary(report)
    for q in QUANTITIES:
        s = report["max_diff"][q]
        case = ET.SubElement(suite, "testcase", classname=name, name=f"{q} agrees for steps 0-{report['steps_checked'] - 1}",
                             time="0")
        if q == failing or (failing is None and not report["ok"] and not incomplete and q == "loss"):
            message = report["diagnosis"] or f"{q} disagrees"
            ET.SubElement(case, "failure", message=message, type="mismatch").text = text
        else:
            ET.SubElement(case, "system-out").text = (
                f"largest |diff| {s['abs_diff']:.3g}, largest diff/tolerance {s['tolerance_ratio']:.3g}")
    case = ET.SubElement(suite, "testcase", classname=name, name="every step asked for was compared", time="0")
    if incomplete:
        ET.SubElement(case, "failure", message=f"{report['steps_checked']} of {report['steps_requested']} steps "
                      "compared", type="incomplete").text = text
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write_junit(path, report):
    atomic_write(path, junit_xml(report) + "\n")


# --- the plot: both loss curves, and the largest difference per step per quantity ---------------------
COLOURS = {"weights": "tab:blue", "forward": "tab:green", "loss": "tab:purple", "gradient": "tab:red"}


def _envelope(steps, values, reduce, bins=400):
    """Per bin of steps, the largest (or smallest) value: a readable envelope of a long noisy series."""
    values = np.asarray(values, dtype=float)
    if len(values) <= bins:
        return steps, values
    edges = np.linspace(0, len(values), bins + 1).astype(int)
    with np.errstate(all="ignore"):
        out = np.array([reduce(values[a:b]) if b > a else np.nan for a, b in zip(edges[:-1], edges[1:])])
    return steps[edges[:-1]], out


def write_plot(path, report):
    """Top: both sides' loss per step, overlaid. Below, one panel per quantity: the largest |diff| per
    step and the tolerance at that element (dashed), on a log scale, with the first mismatch marked.
    Long runs are drawn as per-bin envelopes (largest diff, smallest tolerance of 400 bins)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    h = report["history"]
    steps = np.arange(len(h["loss_numpy"]))
    fig = plt.figure(figsize=(11, 8.5))
    grid = fig.add_gridspec(3, 2, height_ratios=[1.1, 1, 1])
    top = fig.add_subplot(grid[0, :])
    top.plot(steps, h["loss_keras"], color="black", lw=3, alpha=0.3, label="Keras")
    top.plot(steps, h["loss_numpy"], color="tab:orange", lw=1, label="numpy")
    top.set_ylabel("loss")
    losses = np.asarray(h["loss_keras"], dtype=float)
    if np.all(losses[np.isfinite(losses)] > 0):
        top.set_yscale("log")
    top.legend(loc="upper right")
    net = report["network"]
    verdict = "agree" if report["ok"] else ("INCOMPLETE" if report.get("verdict") == "incomplete" else "MISMATCH")
    top.set_title(f"numpy vs Keras: {'-'.join(map(str, net['layers']))} [{', '.join(net['activations'])}], "
                  f"{net['loss']}, {net['optimizer']} lr {net['learning_rate']:g}, {report['backend']} "
                  f"{report['computed_dtype']}: {verdict}", fontsize=11)
    m = report["first_mismatch"] or report.get("nonfinite")
    for i, q in enumerate(QUANTITIES):
        ax = fig.add_subplot(grid[1 + i // 2, i % 2], sharex=top)
        x, diff = _envelope(steps, h[q]["abs_diff"], np.nanmax)
        _, tol = _envelope(steps, h[q]["tolerance"], np.nanmin)
        shown = diff > 0
        ax.plot(x[shown], diff[shown], ".", ms=2.5, color=COLOURS[q], label="largest |numpy − Keras|")
        ax.plot(x, tol, "--", lw=1.2, color="black", alpha=0.7, label="its tolerance")
        if np.any(diff > 0) or np.any(tol > 0):  # a panel with nothing positive (all 0, or none run) stays linear
            ax.set_yscale("log")
        ax.set_title(f"{q}: worst diff/tolerance {report['max_diff'][q]['tolerance_ratio']:.3g}", fontsize=10)
        if m and m["quantity"] == q:
            ax.axvline(m["step"], color="red", lw=1.2)
            ax.plot([m["step"]], [m["abs_diff"] if isinstance(m.get("abs_diff"), float) else np.nanmax(diff)],
                    "rx", ms=10, mew=2, label=f"first mismatch, step {m['step']}")
        if i >= 2:
            ax.set_xlabel("step")
        ax.legend(loc="lower right", fontsize=7)
    if m:
        top.axvline(m["step"], color="red", lw=1.2)
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=100, format="png"), suffix=".png")
    finally:
        plt.close(fig)


OUTPUTS = {
    "json": {"metavar": "PATH", "history": False, "write": write_json,
             "help": "write the report as JSON to PATH ('-': standard output, with the text report on standard "
                     "error)"},
    "plot": {"metavar": "PATH.png", "history": True, "write": write_plot,
             "help": "write a PNG: both loss curves, and the largest difference per step per quantity against "
                     "its tolerance"},
    "junit": {"metavar": "PATH.xml", "history": True, "write": write_junit, "help": "write JUnit XML for CI systems"},
}


def add_options(group):
    """--json, --plot, --junit, ... on an argparse group."""
    for name, output in OUTPUTS.items():
        group.add_argument(f"--{name}", metavar=output["metavar"], help=output["help"])


def requested(args):
    """{name: path} of the outputs the command line asks for (an empty path too: it is refused, not ignored)."""
    return {name: getattr(args, name) for name in OUTPUTS if getattr(args, name, None) is not None}


def needs_history(paths):
    """Whether any requested output draws on the per-step history."""
    return any(OUTPUTS[name]["history"] for name in paths)

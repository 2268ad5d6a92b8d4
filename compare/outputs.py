"""The report files: JSON, JUnit XML and a PNG plot. One table, OUTPUTS, that both command lines (the
check and `check --golden`) loop over: adding a format is a writer and an entry here.

Each entry: the option (--NAME PATH), its metavar and help, whether it needs the per-step history, and
write(path, report). Every file is written through report.atomic_write ("-" is standard output).
"""
import json
import xml.etree.ElementTree as ET  # noqa: N817

from .names import QUANTITIES
from .report import atomic_write, element_place, summary, tensor_of
from .version import DISTRIBUTION


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
    """<testsuites> holding one <testsuite> with a testcase per quantity, named after it, and one for "every
    step asked for was compared"; both elements carry tests, failures, errors, skipped and time. The classname,
    numpy-keras-compare/3-2-1/tensorflow/float64, holds no dot: CI systems read dots as packages. The quantity
    that failed (or first went non-finite) carries a <failure> whose message names the step, tensor, index,
    both values, |diff|, tolerance and the verdict; a quantity never compared is <skipped> with the reason,
    never a pass."""
    from .report import verdict_text
    net = report["network"]
    from .report import network_id
    name = "/".join((DISTRIBUTION, network_id(net), report["backend"], report["dtype"]))
    where = report["first_mismatch"] or report["nonfinite"] or {}
    failing, verdict = where.get("quantity"), report.get("verdict")
    text, line = summary(report), verdict_text(report)
    root = ET.Element("testsuites", name=DISTRIBUTION)
    suite = ET.SubElement(root, "testsuite", name=name)
    props = ET.SubElement(suite, "properties")
    for key in ("verdict", "steps_checked", "steps_requested", "mode", "computed_dtype"):
        ET.SubElement(props, "property", name=key, value=str(report.get(key)))
    failures = skipped = 0
    for q in QUANTITIES:
        s = report["max_diff"][q]
        case = ET.SubElement(suite, "testcase", classname=name, name=q, time="0")
        if q == failing:
            failures += 1
            ET.SubElement(case, "failure", message=failure_message(where, report),
                          type="diverged" if verdict == "diverged" else "mismatch").text = text
        elif not s.get("compared"):
            skipped += 1
            ET.SubElement(case, "skipped", message=f"{q} was not compared: {_stopped(report)}")
        else:
            r = s["largest_ratio"]
            ET.SubElement(case, "system-out").text = (
                f"{q} agrees at every element compared; largest diff/tolerance {float(r['ratio']):.3g} (|diff| {float(r['abs_diff']):.3g}, "
                f"tolerance {float(r['tolerance']):.3g}) at {element_place(r)}")
    case = ET.SubElement(suite, "testcase", classname=name, name="every step asked for was compared", time="0")
    if verdict == "incomplete":
        failures += 1
        ET.SubElement(case, "failure", message=line, type="incomplete").text = text
    elif report["steps_checked"] < report["steps_requested"]:
        skipped += 1
        ET.SubElement(case, "skipped", message=f"steps {report['steps_checked']} to {report['steps_requested'] - 1} "
                      f"were not compared: {_stopped(report)}")
    for element in (root, suite):
        element.attrib.update(tests=str(len(QUANTITIES) + 1), failures=str(failures), errors="0", skipped=str(skipped),
                              time=f"{report['timing']['total_s']:.3f}")
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def failure_message(where, report):
    """'step 0, gradient dW0[1, 1]: numpy 7.73…, keras -5.15…, |diff| 12.9…, tolerance 9.73e-13; verdict mismatch
    (1 of 100 steps compared)'."""
    index = f"{list(where['index'])}" if where.get("index") else ""
    parts = [f"step {where['step']}, {tensor_of(where)}{index}"]
    for key, label in (("numpy", "numpy"), ("keras", "keras"), ("abs_diff", "|diff|"), ("tolerance", "tolerance")):
        if key in where:
            parts.append(f"{label} {where[key]!r}")
    if "value" in where and "numpy" not in where:
        parts.append(f"{where['value']} on {where['side']} side{'s' * (where['side'] == 'both')}")
    return (f"{parts[0]}: {', '.join(parts[1:])}; verdict {report['verdict']} ({report['steps_checked']} of "
            f"{report['steps_requested']} steps compared)")


def _stopped(report):
    """Why a check compared less than asked: the step it stopped at, or the notes."""
    where = report["first_mismatch"] or report["nonfinite"]
    if where:
        return f"the check stopped at step {where['step']}, {tensor_of(where)}"
    return "; ".join(report["notes"][-1:]) or "fewer steps were compared than asked"


def write_junit(path, report):
    atomic_write(path, junit_xml(report) + "\n")


# --- the plot (compare/plot.py) --------------------------------------------------------------------------
def write_plot(path, report):
    """The figure of compare/plot.py as a PNG."""
    from .plot import figure
    fig = figure(report)
    atomic_write(path, lambda f: fig.savefig(f, dpi=100, format="png"), suffix=".png")


OUTPUTS = {
    "json": {"metavar": "PATH", "history": False, "write": write_json,
             "help": "write the report as JSON to PATH ('-': standard output, with the text report on standard "
                     "error)"},
    "plot": {"metavar": "PATH.png", "history": True, "write": write_plot,
             "help": "write a PNG: both loss curves, and the largest difference per step per quantity against "
                     "its tolerance; a failure in the first steps: the failing tensor, numpy against Keras per "
                     "element"},
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

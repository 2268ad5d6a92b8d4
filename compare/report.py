"""The report: a readable summary for the terminal and JSON written atomically."""
import json
import os
import tempfile

QUANTITIES = ("weights", "forward", "loss", "gradient")


def summary(report):
    """A plain-text summary: what was checked, the largest difference per quantity, the verdict."""
    net, lines = report["network"], []
    computed = f" (computed in {report['computed_dtype']})" if report["computed_dtype"] != report["dtype"] else ""
    lines.append(f"numpy ({net['type']}) vs Keras {report['versions']['keras']} on {report['backend']} "
                 f"{report['versions'].get(report['backend'], '')}, {report['dtype']}{computed}, "
                 f"{report['mode']} steps")
    lines.append(f"network {'-'.join(map(str, net['layers']))} [{', '.join(net['activations'])}], "
                 f"{net['parameters']} parameters; loss {_named(net['loss'], net['loss_config'])}, "
                 f"optimizer {_named(net['optimizer'], net['optimizer_config'])}, learning rate {net['learning_rate']:g}")
    d = report["data"]
    lines.append(f"data: {d['rows']} rows, batches of {d['batch_size']} ({d['steps_per_epoch']} steps per epoch)")
    lines.append(f"steps checked: {report['steps_checked']} of {report['steps_requested']}")
    lines.append(f"  {'quantity':<10}{'largest |diff|':>16}{'diff/tolerance':>16}  where")
    for q in QUANTITIES:
        s = report["max_diff"][q]
        where = f"step {s['step']}, {s['name']}" if s["step"] is not None else "-"
        lines.append(f"  {q:<10}{s['abs_diff']:>16.3g}{s['tolerance_ratio']:>16.3g}  {where}")
    if report.get("drift"):
        d = report["drift"]
        lines.append(f"drift between the free-running trajectories: {d['max_abs']:.3g} "
                     f"({d['max_rel']:.3g} relative, limit {d['limit_rel']:g})")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    m = report["first_mismatch"]
    if m:
        where = f"{m['quantity']}{' (' + m['phase'] + ')' if m.get('phase') else ''} {m['name']}{m['index']}"
        lines.append(f"MISMATCH at step {m['step']}, {where}: {m['mismatched']} of {m['elements']} elements differ")
        lines.append(f"  numpy     {m['numpy']!r}")
        lines.append(f"  keras     {m['keras']!r}")
        rel = f" (relative {m['rel_diff']:.3g})" if isinstance(m.get("rel_diff"), float) else ""
        tol = f" > tolerance {m['tolerance']:.3g}" if isinstance(m.get("tolerance"), float) else ""
        diff = m["abs_diff"] if isinstance(m["abs_diff"], str) else f"{m['abs_diff']:.3g}"
        lines.append(f"  |diff|    {diff}{rel}{tol}")
    if report["diagnosis"]:
        lines.append(f"diagnosis: {report['diagnosis']}")
    if report.get("referee"):
        lines += referee_lines(report["referee"])
    lines.append("verdict: " + ("OK: numpy and Keras agree at every step checked" if report["ok"] else
                                "FAIL: numpy and Keras disagree"))
    return "\n".join(lines)


VERDICTS = {"numpy": "the numpy side is wrong", "keras": "Keras is wrong", "both": "both sides are wrong",
            "neither": "neither side is wrong", None: "no verdict"}


def referee_lines(r):
    """The referee's verdict and each side's error, as lines for the summary."""
    if r["name"] == "exact":
        head = f"referee exact ({r.get('digits', 50)} digits) at step {r['step']}: {VERDICTS[r['verdict']]}"
    else:
        head = (f"referee finite_differences at step {r['step']} ({r.get('coordinates', 0)} of "
                f"{r.get('parameters', 0)} coordinates, its own error estimate up to "
                f"{r.get('error_estimate', float('nan')):.2g}): {VERDICTS[r['verdict']]}")
    lines = [head]
    for side in ("numpy", "keras"):
        errors = r.get(side)
        if not errors:
            continue
        if r["name"] == "exact":
            q, e = max(errors.items(), key=lambda kv: kv[1]["max_elementwise_rel"])
            lines.append(f"  {side:<6} worst: {q} {e['where']} off by {e['max_elementwise_rel']:.2g} relative "
                         f"({e['max_ulps']:.3g} ulp), {e['error_over_bound']:.2g} of its rounding bound")
        else:
            lines.append(f"  {side:<6} differs from the difference quotient by up to {errors['max_abs_diff']:.2g} "
                         f"({errors['max_diff_over_allowance']:.2g} of the allowance)")
    if r.get("note"):
        lines.append(f"  note: {r['note']}")
    return lines


def _named(name, config):
    return name + (" " + ", ".join(f"{k}={v}" for k, v in config.items()) if config else "")


def ensure_writable(path):
    """Fail before any work if `path` cannot be written: its folder must exist and accept a file."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise OSError(f"{path} is a folder")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".compare-", suffix=".tmp")
    os.close(fd)
    os.remove(tmp)


def write_json(path, report):
    """Write the report to a temporary file beside `path`, then rename it: no half-written report."""
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".compare-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

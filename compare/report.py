"""The report: a readable summary for the terminal and JSON written atomically."""
import errno
import os
import stat
import sys
import tempfile

from .names import QUANTITIES



def summary(report, width=110):
    """The report as plain text (what `render` prints, without colour)."""
    from io import StringIO

    from rich.console import Console
    buffer = StringIO()
    render(report, Console(file=buffer, width=width, color_system=None, soft_wrap=True))
    return buffer.getvalue().rstrip("\n")


def render(report, console):
    """Print the report with rich: what was checked, a table of the largest differences next to their
    tolerances, the first mismatch the way a failing test shows one, the referee, and the verdict."""
    from rich.markup import escape
    net, d = report["network"], report["data"]
    computed = f" (computed in {report['computed_dtype']})" if report["computed_dtype"] != report["dtype"] else ""
    console.print(f"numpy ({net['type']}) vs Keras {report['versions']['keras']} on {report['backend']} "
                  f"{report['versions'].get(report['backend'], '')}, {report['dtype']}{computed}, "
                  f"{report['mode']} steps", markup=False, highlight=False)
    if report.get("golden"):
        g = report["golden"]
        kind = "layered format v1, content-hashed" if g.get("kind") == "layered" else f"format v{g['format']}"
        console.print(f"golden file {g['path']} (sha256 {g['sha256'][:16]}…, {kind}): Keras's "
                      "recorded trajectory, played back without Keras", markup=False, highlight=False)
    console.print(f"network {network_text(net)}, "
                  f"{net['parameters']} parameters; loss {_named(net['loss'], net['loss_config'])}, "
                  f"optimizer {_named(net['optimizer'], net['optimizer_config'])}, learning rate "
                  f"{net['learning_rate']:g}", markup=False, highlight=False)
    if report.get("loss_convention", {}).get("declared"):
        console.print(report["loss_convention"]["text"], markup=False, highlight=False)
    console.print(f"data: {d['rows']} rows, batches of {d['batch_size']} ({d['steps_per_epoch']} steps per epoch)",
                  highlight=False)
    console.print(f"steps checked: {report['steps_checked']} of {report['steps_requested']}", markup=False, highlight=False)
    console.print(summary_table(report["max_diff"]))
    if report.get("drift"):
        dr = report["drift"]
        console.print(f"drift between the free-running trajectories: {dr['max_abs']:.3g} "
                      f"({dr['max_rel']:.3g} relative, limit {dr['limit_rel']:g})", markup=False, highlight=False)
    for note in report["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False)
    m = report["first_mismatch"]
    if m:
        where = f"{tensor_of(m)}{m['index']}"
        console.print(f"[bold red]MISMATCH at step {m['step']}, {escape(where)}[/bold red]: {m['mismatched']} of "
                      f"{m['elements']} elements differ", highlight=False)
        console.print(f"  numpy     {m['numpy']!r}", markup=False, highlight=False)
        console.print(f"  keras     {m['keras']!r}", markup=False, highlight=False)
        rel = f" (relative {m['rel_diff']:.3g})" if isinstance(m.get("rel_diff"), float) else ""
        tol = f" > tolerance {m['tolerance']:.3g}" if isinstance(m.get("tolerance"), float) else ""
        ratio = f", {times_tolerance(m)} × the tolerance" if times_tolerance(m) else ""
        diff = m["abs_diff"] if isinstance(m["abs_diff"], str) else f"{m['abs_diff']:.3g}"
        console.print(f"  |diff|    {diff}{rel}{tol}{ratio}", markup=False, highlight=False)
    if not report["ok"] and report.get("location"):
        console.print(f"location: {report['location']['text']}", markup=False, highlight=False)
    if not report["ok"] and report.get("tensors"):
        console.print(tensors_table(report["tensors"]))
    if report["diagnosis"]:
        console.print(f"diagnosis: {report['diagnosis']}", markup=False, highlight=False)
    if report.get("referee"):
        for line in referee_lines(report["referee"]):
            console.print(line, markup=False, highlight=False)
    console.print("verdict: " + verdict_text(report, markup=True), highlight=False)


def network_text(net):
    """'3-2-1 [tanh, linear]' for a Dense network, 'Reshape → Conv2D → … → Softmax' for one that declares layers."""
    if "activations" not in net:
        return " → ".join(d["class_name"] for d in net["layers"])
    return f"{'-'.join(map(str, net['layers']))} [{', '.join(net['activations'])}]"


def network_id(net):
    """'3-2-1' or 'Reshape-Conv2D-…-Softmax': the network in a name without spaces or dots (a JUnit classname)."""
    if "activations" not in net:
        return "-".join(d["class_name"] for d in net["layers"])
    return "-".join(map(str, net["layers"]))


def summary_table(max_diff):
    """Per quantity, one row, one element: the element furthest outside its tolerance (diff/tolerance, its
    |diff|, its tolerance, where). The largest |diff|, often another element, is in the JSON report
    (max_diff.<quantity>.largest_abs_diff). A quantity never compared shows "–" throughout."""
    from rich.markup import escape
    from rich.table import Table
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column, justify in (("quantity", "left"), ("largest\ndiff/tolerance", "right"), ("its\n|diff|", "right"),
                            ("its\ntolerance", "right"), ("\nat", "left")):
        table.add_column(column, justify=justify, vertical="bottom", no_wrap=True)
    for q in QUANTITIES:
        r, d = max_diff[q].get("largest_ratio"), max_diff[q].get("largest_abs_diff")
        if not r or not d:
            table.add_row(q, *[NOT_COMPARED] * 4)
            continue
        ratio = _g(r["ratio"])
        table.add_row(q, f"[red]{ratio}[/red]" if not _float(r["ratio"]) <= 1 else ratio, _g(r["abs_diff"]),
                      _g(r["tolerance"]), escape(element_place(r)))
    return table


# What a report shows for a quantity that was never compared (the check stopped before it).
NOT_COMPARED = "\u2013"


def element_place(e):
    """'step 0, dW0[1, 1]', 'step 3, W1[0, 1] (updated)', 'step 2, loss': one element of a tensor (the weights
    entering a step, unless marked updated)."""
    index = f"{list(e['index'])}" if e.get("index") else ""
    phase = " (updated)" if e.get("phase") == "updated" else ""  # the weights entering a step are the default
    return f"step {e['step']}, {e['name']}{index}{phase}"


def tensors_table(tensors):
    """The failing step's tensors in backprop order: whether each agrees, how many elements do not, and
    its largest diff/tolerance."""
    from rich.table import Table
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column, justify in (("  tensor", "left"), ("agrees", "left"), ("mismatched", "right"),
                            ("largest diff/tolerance", "right")):
        table.add_column(column, justify=justify)
    for t in tensors:
        ratio = _g(t["largest_ratio"])
        table.add_row(f"  {t['tensor']}{' (updated)' if t['quantity'] == 'updated' else ''}", "yes" if t["agrees"] else "[red]no[/red]",
                      f"{t['mismatched']}/{t['elements']}", ratio if t["agrees"] else f"[red]{ratio}[/red]")
    return table


def _float(x):
    """A report's number (a float, or 'nan'/'inf' text) as a float."""
    return float(x) if x is not None else float("nan")


def _g(x):
    return f"{_float(x):.3g}"


def verdict_text(report, markup=False):
    """The verdict line: OK only when every step asked for was compared and agreed; otherwise what went
    wrong, where (step, tensor, index) and how many of the steps asked for were compared."""
    colour = "green" if report["ok"] else "bold red"
    checked, asked = report["steps_checked"], report["steps_requested"]
    verdict = report.get("verdict")
    if report["ok"]:
        text = f"OK: numpy and Keras agree at every step checked ({checked} of {asked})"
    elif verdict == "inconclusive":
        text = (f"INCONCLUSIVE: every element of the {checked} steps is within its tolerance, but rounding leaves some "
                "tensors too coarse to pass a small mistake (see the notes)")
    elif verdict == "incomplete":
        text = (f"INCOMPLETE: numpy and Keras agree on the {checked} steps compared, but "
                f"{asked} were asked for; the rest were not compared (see the notes)")
    elif verdict == "diverged":
        n = report["nonfinite"]
        text = (f"DIVERGED: both sides diverged alike at step {n['step']} ({n['value']} first in "
                f"{_quantity_tensor(n)} on both sides, nothing disagreeing up to there; {checked} of {asked} "
                "steps compared)")
    else:
        text = f"FAIL: numpy and Keras disagree{_failure_place(report)} ({checked} of {asked} steps compared)"
    if markup:
        from rich.markup import escape
        return f"[{colour}]{escape(text)}[/{colour}]"
    return text


def _quantity_tensor(where):
    """'gradient dW0', 'weights (updated) W1', 'loss'."""
    return where["name"] if where["name"] == where["quantity"] else tensor_of(where)


def _failure_place(report):
    """' at step 0, gradient dW0[1, 1]: numpy 7.73…, keras -5.15…, |diff| 12.9 > tolerance 9.73e-13'."""
    m = report["first_mismatch"] or report.get("nonfinite")
    if not m:
        return ""
    index = f"{list(m['index'])}" if m.get("index") else ""
    text = f" at step {m['step']}, {_quantity_tensor(m)}{index}"
    if "numpy" in m:
        text += f": numpy {m['numpy']!r}, keras {m['keras']!r}"
    if m.get("unbounded"):
        return text + f", which the check could not bound (its tolerance is {m['tolerance']})"
    if isinstance(m.get("abs_diff"), float) and isinstance(m.get("tolerance"), float):
        text += f", |diff| {m['abs_diff']:.3g} > tolerance {m['tolerance']:.3g}"
    return text


def tensor_of(m):
    """'gradient dW0', 'weights (updated) W1': the quantity, phase and tensor of a mismatch."""
    return f"{m['quantity']}{' (' + m['phase'] + ')' if m.get('phase') else ''} {m['name']}"


def times_tolerance(m):
    """How many times its tolerance a mismatch's |diff| is ('1.32e+13'), or None where there is no ratio."""
    if isinstance(m.get("tolerance"), float) and m["tolerance"] > 0 and isinstance(m.get("abs_diff"), float):
        return f"{m['abs_diff'] / m['tolerance']:.3g}"
    return None


def mismatch_message(report):
    """The failure message of a report whose `ok` is False, in the style of torch.testing.assert_close."""
    m, nonfinite = report["first_mismatch"], report["nonfinite"]
    if report.get("verdict") == "incomplete":
        return (f"numpy and Keras were compared on {report['steps_checked']} of the {report['steps_requested']} "
                f"steps asked for!\n\n" + "\n".join(report["notes"]))
    if report.get("verdict") == "diverged":
        return (f"numpy and Keras both diverged alike at step {nonfinite['step']}!\n\n{report['diagnosis']}")
    if m is None:
        return (f"numpy and Keras could not be compared past step {nonfinite['step']}!\n\n"
                f"{report['diagnosis']}")
    lines = [f"numpy and Keras are not close at step {m['step']}, {tensor_of(m)}!", "",
             f"Mismatched elements: {m['mismatched']} / {m['elements']} "
             f"({100 * m['mismatched'] / m['elements']:.1f}%)"]
    if "greatest_abs_diff" in m:
        a, r = m["greatest_abs_diff"], m["greatest_rel_diff"]
        lines.append(f"Greatest absolute difference: {a['value']} at index {tuple(a['index'])} "
                     f"(up to {a['tolerance']:.3g} allowed)")
        lines.append(f"Greatest relative difference: {r['value']} at index {tuple(r['index'])}")
        times = f"{times_tolerance(m)} × its tolerance" if times_tolerance(m) else "its tolerance is"
        lines.append(f"Furthest outside its tolerance: index {tuple(m['index'])}, numpy {m['numpy']!r}, "
                     f"keras {m['keras']!r}, {times} {m['tolerance']:.3g}")
    else:
        lines.append(f"At index {tuple(m['index'])}: numpy {m['numpy']!r}, keras {m['keras']!r}")
    if report["diagnosis"]:
        lines.append(f"Diagnosis: {report['diagnosis']}")
    lines.append(f"({report['backend']}, {report['computed_dtype']}, {report['mode']} steps, "
                 f"{report['steps_checked']} of {report['steps_requested']} checked)")
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
            q, e = max(errors.items(), key=lambda kv: kv[1]["error_over_bound"])
            if e["error_over_bound"] > 1:  # wrong: the element that decides it, its error and its ratio to the bound
                lines.append(f"  {side:<6} wrong: {q} {e['where_over_bound']} off by {e['error_where_over_bound']:.3g}, "
                             f"{e['error_over_bound']:.3g} of its rounding bound")
                continue
            q, e = max(errors.items(), key=lambda kv: kv[1]["max_elementwise_rel"])  # the digits lost, and the margin
            where = f" {e['where']} off by {e['max_elementwise_rel']:.2g} relative ({e['max_ulps']:.3g} ulp)," \
                if e["where"] else " exact,"
            top = max(errors.values(), key=lambda v: v["error_over_bound"])
            at = f" (at {top['where_over_bound']})" if top["where_over_bound"] else ""
            lines.append(f"  {side:<6} worst: {q}{where} every element within {top['error_over_bound']:.2g} of its "
                         f"rounding bound{at}")
        else:
            lines.append(f"  {side:<6} differs from the difference quotient by up to {errors['max_abs_diff']:.2g} "
                         f"({errors['max_diff_over_allowance']:.2g} of the allowance)")
    if r.get("note"):
        lines.append(f"  note: {r['note']}")
    return lines


def _named(name, config):
    return name + (" " + ", ".join(f"{k}={v}" for k, v in config.items()) if config else "")


def ensure_writable(path):
    """Fail before any work if `path` cannot be written: "-" (standard output) always can; a link is
    followed to what it points at; a terminal, pipe or other device must accept writes; a folder never
    can; otherwise the folder of the (final) path must exist and accept a new file."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise OSError(f"{path} is a folder")
    os.stat(os.path.dirname(os.path.abspath(path)) or ".")
    if os.path.islink(path) and not os.path.exists(path):
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a loop of links: never replaced by a file
                raise
    if _device(path):
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, f"{path} is not writable")
        return
    target = os.path.realpath(path)
    if len(os.path.basename(target).encode()) > os.pathconf(os.path.dirname(target), "PC_NAME_MAX"):
        raise OSError(errno.ENAMETOOLONG, "its name is too long")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".compare-", suffix=".tmp")
    os.close(fd)
    os.remove(tmp)


def atomic_write(path, write, suffix=".tmp"):
    """Write an output file: `write` is the text, or a function that writes to a binary file object.

    - "-": standard output.
    - A link is followed: what it points at is written, the link stays.
    - A terminal, pipe or other device (anything that exists and is not a regular file or a folder) is
      written through, never replaced.
    - Otherwise a temporary file beside the target is written, given the target's mode (a new file:
      0666 less the umask, as open() would), and renamed onto it: never a half-written file.
    In a supervised child (python -m compare) each file is announced, so that a Ctrl-C leaves none.
    """
    from .supervise import announce
    data = write.encode() if isinstance(write, str) else None
    if path == "-":
        sys.stdout.flush()
        _emit(sys.stdout.buffer, write, data)
        sys.stdout.buffer.flush()
        return
    if _device(path):
        with open(path, "wb") as f:
            _emit(f, write, data)
        return
    target = os.path.realpath(path)
    mode = stat.S_IMODE(os.stat(target).st_mode) if os.path.exists(target) else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".compare-", suffix=suffix)
    announce("tmp", tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            _emit(f, write, data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        announce("wrote", target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _device(path):
    """Whether `path` (links followed) exists and is neither a regular file nor a folder: a terminal, a
    pipe (/dev/stdout), a socket or another device, written through and never replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _emit(f, write, data):
    if data is not None:
        f.write(data)
    else:
        write(f)


def _umask():
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

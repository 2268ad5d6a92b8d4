"""The --plot figure. Over the steps: both sides' loss, and per quantity the largest |diff| per step
against the tolerance at that element. For a mismatch in the first few steps, where curves over steps
would be single points: the failing tensor element by element, numpy against Keras, and each element's
|diff| against its tolerance. Built as a matplotlib Figure (no pyplot), so a test can read what is drawn."""
import numpy as np

from .names import QUANTITIES

COLOURS = {"weights": "tab:blue", "forward": "tab:green", "loss": "tab:purple", "gradient": "tab:red"}

# A check that failed before this step, or compared fewer steps, is drawn element by element.
EARLY = 5


def figure(report):
    """The figure of a report that has a history (check(..., history=True), or --plot)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 8.5))
    if early_failure(report):
        _elements(fig, report)
    else:
        _steps(fig, report)
    fig.tight_layout()
    return fig


def early_failure(report):
    """Whether the check failed in its first EARLY steps (or compared fewer) with the failing tensor kept."""
    where = report["first_mismatch"] or report.get("nonfinite")
    return bool(where and report["history"].get("failing_tensor")
                and (where["step"] < EARLY or report["steps_checked"] < EARLY))


def positive(values):
    """The values as floats, with those ≤ 0 (and None, NaN, ±inf) as NaN: what a log axis can draw."""
    v = finite(values)
    with np.errstate(invalid="ignore"):
        return np.where(v > 0, v, np.nan)


def finite(values):
    """The values as floats, with None, NaN and ±inf as NaN (not drawn)."""
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    return np.where(np.isfinite(v), v, np.nan)


# Above this a log axis's margins and ticks overflow float64: such values are drawn on a linear axis.
LOG_LIMIT = 1e280


def log_scale(ax, *series):
    """A log y axis where something positive is drawn and nothing reaches LOG_LIMIT; else linear."""
    values = np.concatenate([np.asarray(v, dtype=float).ravel() for v in series])
    values = values[np.isfinite(values)]
    if values.size and np.all(values > 0) and values.max() < LOG_LIMIT:
        ax.set_yscale("log")


def style(n, line="-"):
    """A line for a long series, markers where it has few points (a single point is never an empty line)."""
    return {"linestyle": line, "marker": "o" if n <= 20 else None, "markersize": 4}


def _title(report):
    net = report["network"]
    verdict = {"ok": "agree", "incomplete": "INCOMPLETE", "diverged": "DIVERGED"}.get(report.get("verdict"), "MISMATCH")
    from .report import network_text
    return (f"numpy vs Keras: {network_text(net)}, {net['loss']}, "
            f"{net['optimizer']} lr {net['learning_rate']:g}, {report['backend']} {report['computed_dtype']}: {verdict}")


def _loss(ax, report):
    """Both sides' loss per step, overlaid (log scale where every loss is > 0)."""
    h = report["history"]
    steps = np.arange(len(h["loss_numpy"]))
    keras, numpy = finite(h["loss_keras"]), finite(h["loss_numpy"])
    ax.plot(steps, keras, color="black", lw=3, alpha=0.3, label="Keras", **style(len(steps)))
    ax.plot(steps, numpy, color="tab:orange", lw=1, label="numpy",
            **dict(style(len(steps)), marker="x" if len(steps) <= 20 else None))
    log_scale(ax, keras, numpy)
    ax.set_ylabel("loss")
    ax.set_xlabel("step")
    ax.legend(loc="upper right")


def _elements(fig, report):
    """A failure in the first steps: the failing tensor per element (numpy against Keras), and per element
    |diff| against its tolerance on a log axis; the loss of both sides when more than one step ran."""
    t = report["history"]["failing_tensor"]
    x = np.asarray(t["index"])
    several = len(report["history"]["loss_numpy"]) > 1
    grid = fig.add_gridspec(3 if several else 2, 1)
    name = t["name"] if t["name"] == t["quantity"] else f"{t['quantity']}{' (' + t['phase'] + ')' if t.get('phase') else ''} {t['name']}"
    values = fig.add_subplot(grid[0])
    values.plot(x, finite(t["keras"]), "s", ms=7, mfc="none", color="black", label="Keras")
    values.plot(x, finite(t["numpy"]), "x", ms=7, color="tab:orange", label="numpy")
    values.set_ylabel("value")
    values.set_title(f"{_title(report)}\nstep {t['step']}, {name} {tuple(t['shape'])}: each element, numpy "
                     "against Keras", fontsize=10)
    values.legend(loc="best", fontsize=8)
    diffs = fig.add_subplot(grid[1], sharex=values)
    d, tol = positive(np.abs(finite(t["numpy"]) - finite(t["keras"]))), positive(finite(t["tolerance"]))
    diffs.plot(x, d, "o", ms=5, color=COLOURS.get(t["quantity"], "tab:red"), label="|numpy − Keras|")
    diffs.plot(x, tol, "_", ms=14, mew=2, color="black", label="its tolerance")
    log_scale(diffs, d, tol)
    diffs.set_xlabel("element (flat index, row-major)")
    diffs.set_ylabel("|diff| and tolerance")
    diffs.legend(loc="best", fontsize=8)
    if several:
        _loss(fig.add_subplot(grid[2]), report)


def _envelope(steps, values, reduce, bins=400):
    """Per bin of steps, the largest (or smallest) value: a readable envelope of a long noisy series."""
    values = np.asarray(values, dtype=float)
    if len(values) <= bins:
        return steps, values
    edges = np.linspace(0, len(values), bins + 1).astype(int)
    with np.errstate(all="ignore"):
        out = np.array([reduce(values[a:b]) if b > a else np.nan for a, b in zip(edges[:-1], edges[1:])])
    return steps[edges[:-1]], out


def _steps(fig, report):
    """Top: both sides' loss per step. Below, one panel per quantity: the largest |diff| per step and the
    tolerance at that element (dashed), on a log scale where anything is > 0 (zeros are not drawn), with
    the first mismatch marked. Long runs are drawn as per-bin envelopes (largest diff, smallest tolerance
    of 400 bins)."""
    h = report["history"]
    steps = np.arange(len(h["loss_numpy"]))
    grid = fig.add_gridspec(3, 2, height_ratios=[1.1, 1, 1])
    top = fig.add_subplot(grid[0, :])
    _loss(top, report)
    top.set_xlabel("")
    top.set_title(_title(report), fontsize=11)
    m = report["first_mismatch"] or report.get("nonfinite")
    for i, q in enumerate(QUANTITIES):
        ax = fig.add_subplot(grid[1 + i // 2, i % 2], sharex=top)
        x, diff = _envelope(steps, h[q]["abs_diff"], np.nanmax)
        _, tol = _envelope(steps, h[q]["tolerance"], np.nanmin)
        diff, tol = positive(diff), positive(tol)  # a zero tolerance is not drawn on a log axis
        ax.plot(x, diff, ".", ms=2.5 if len(x) > 20 else 6, color=COLOURS[q], label="largest |numpy − Keras|")
        ax.plot(x, tol, color="black", lw=1.2, alpha=0.7, label="its tolerance", **style(len(x), "--"))
        log_scale(ax, diff, tol)  # nothing > 0 (all 0, or none run): linear
        r = report["max_diff"][q].get("largest_ratio")
        ax.set_title(f"{q}: worst diff/tolerance {float(r['ratio']):.3g}" if r else f"{q}: not compared",
                     fontsize=10)
        if m and m["quantity"] == q:
            ax.axvline(m["step"], color="red", lw=1.2)
            y = m.get("abs_diff") if isinstance(m.get("abs_diff"), float) and m["abs_diff"] > 0 else np.nanmax(diff)
            ax.plot([m["step"]], [y], "rx", ms=10, mew=2, label=f"first mismatch, step {m['step']}")
        if i >= 2:
            ax.set_xlabel("step")
        ax.legend(loc="lower right", fontsize=7)
    if m:
        top.axvline(m["step"], color="red", lw=1.2)

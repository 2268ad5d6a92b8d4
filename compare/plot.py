"""--plot: one PNG with the loss curves of both sides and the largest difference per step per quantity."""
import numpy as np

from .names import QUANTITIES

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
    from .report import atomic_write
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"), suffix=".png")
    finally:
        plt.close(fig)

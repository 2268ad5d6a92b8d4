"""assert_matches_keras: the check as an assertion for a user's own test suite."""
from .checking import check


def assert_matches_keras(network, X, y, steps=100, **options):
    """Train `network` and Keras side by side for `steps` steps; raise AssertionError on a mismatch.

    `options` are `check`'s (epochs, batch_size, seed, free_running, dtype, referee, backend). The
    message reads like torch.testing.assert_close's: how many elements mismatched, the greatest
    absolute and relative difference with their index, the allowed tolerance, plus the step, the
    quantity and the diagnosis. Returns the report when everything matches.
    """
    report = check(network, X, y, steps=steps, **options)
    if not report["ok"]:
        raise AssertionError(mismatch_message(report))
    return report


def mismatch_message(report):
    """The failure message of a report whose `ok` is False."""
    m, nonfinite = report["first_mismatch"], report["nonfinite"]
    if report.get("verdict") == "incomplete":
        return (f"numpy and Keras were compared on {report['steps_checked']} of the {report['steps_requested']} "
                f"steps asked for!\n\n" + "\n".join(report["notes"]))
    if m is None:
        return (f"numpy and Keras could not be compared past step {nonfinite['step']}!\n\n"
                f"{report['diagnosis']}")
    where = f"{m['quantity']}{' (' + m['phase'] + ')' if m.get('phase') else ''} {m['name']}"
    lines = [f"numpy and Keras are not close at step {m['step']}, {where}!", "",
             f"Mismatched elements: {m['mismatched']} / {m['elements']} "
             f"({100 * m['mismatched'] / m['elements']:.1f}%)"]
    if "greatest_abs_diff" in m:
        a, r = m["greatest_abs_diff"], m["greatest_rel_diff"]
        lines.append(f"Greatest absolute difference: {a['value']} at index {tuple(a['index'])} "
                     f"(up to {a['tolerance']:.3g} allowed)")
        lines.append(f"Greatest relative difference: {r['value']} at index {tuple(r['index'])}")
        times = f"{m['abs_diff'] / m['tolerance']:.3g} × its tolerance" if m["tolerance"] > 0 else "its tolerance is"
        lines.append(f"Furthest outside its tolerance: index {tuple(m['index'])}, numpy {m['numpy']!r}, "
                     f"keras {m['keras']!r}, {times} {m['tolerance']:.3g}")
    else:
        lines.append(f"At index {tuple(m['index'])}: numpy {m['numpy']!r}, keras {m['keras']!r}")
    if report["diagnosis"]:
        lines.append(f"Diagnosis: {report['diagnosis']}")
    lines.append(f"({report['backend']}, {report['computed_dtype']}, {report['mode']} steps, "
                 f"{report['steps_checked']} of {report['steps_requested']} checked)")
    return "\n".join(lines)

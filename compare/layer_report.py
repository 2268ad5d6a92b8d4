"""A single-layer check's report as text: the terminal report, the verdict line and the assertion message."""
import math

QUANTITY_WORDS = {"output": "output", "input_gradient": "input gradient", "weight_gradient": "weight gradient",
                  "state": "state after the call"}


def _g(x):
    return "–" if x is None else "inf" if x == math.inf else f"{x:.3g}"


def place(m):
    """'weight gradient dkernel[2, 0, 1, 3]' (or the tensor alone for a shape mismatch), and 'in the second call'."""
    index = "" if m.get("index") is None else "[" + ", ".join(map(str, m["index"])) + "]"
    again = " in the second call" if m.get("call") == 2 else ""
    return f"{QUANTITY_WORDS[m['quantity']]} {m['name']}{index}{again}"


def verdict_line(report):
    m = report["first_mismatch"]
    cls = report["layer"]["class_name"]
    if m is None and report.get("coarse"):
        coarse = ", ".join(f"{c['name']} ({c['resolution']:.2g} of its largest value)" if c["resolution"] != float("inf")
                           else f"{c['name']} (its bound overflowed)" for c in report["coarse"])
        why = ("a bound carried with absolute values over a long sequence, past the memory of the signed one, "
               "compounds" if any(c["resolution"] == float("inf") for c in report["coarse"]) else
               "rounding alone can move these values that much: gradients through gates saturated near ±1, where "
               "1 − h² and 1 − z keep few digits")
        return (f"verdict: INCONCLUSIVE: every element agrees, but the bound is too coarse to call that an OK for "
                f"{coarse}: a mistake that large would pass ({why})")
    if m is None:
        return (f"verdict: OK: the numpy layer and Keras's {cls} agree on every element of "
                f"{', '.join(c['name'] for c in report['compared'])}")
    if m.get("numpy_shape") is not None or m.get("index") is None:
        return (f"verdict: FAIL: numpy and Keras's {cls} disagree at {place(m)}: numpy shape "
                f"{_shape(m.get('numpy_shape'))}, keras shape {_shape(m['keras_shape'])}")
    return (f"verdict: FAIL: numpy and Keras's {cls} disagree at {place(m)}: numpy {m['numpy']!r}, keras "
            f"{m['keras']!r}, |diff| {_g(m['abs_diff'])} > tolerance {_g(m['tolerance'])}")


def _shape(shape):
    return "None" if shape is None else str(tuple(shape))


def lines(report):
    """The terminal report, line by line."""
    layer, v = report["layer"], report["versions"]
    call = f", call {layer['call']}" if layer["call"] else ""
    out = [f"numpy layer vs keras.layers.{layer['class_name']}({_config(layer['config'])}){call}",
           f"Keras {v['keras']} on tensorflow {v['tensorflow']}, {report['dtype']}, "
           f"{'training' if report['training'] else 'inference'}, input {tuple(report['input_shape'])}"
           f"{' ' + report['layout']['input'] if report['layout']['input'] else ''}, seed {report['seed']}",
           f"  {'tensor':<16}{'elements':>10}{'mismatched':>12}{'largest diff/tolerance':>25}"]
    for c in report["compared"]:
        out.append(f"  {c['name']:<16}{c['size']:>10}{c['mismatched']:>12}{_g(c['largest_ratio']):>25}")
    m = report["first_mismatch"]
    if m is not None and m.get("index") is not None:
        out += [f"MISMATCH at {place(m)}: {m['mismatched']} of {m['size']} elements differ",
                f"  numpy     {m['numpy']!r}", f"  keras     {m['keras']!r}",
                f"  |diff|    {_g(m['abs_diff'])} > tolerance {_g(m['tolerance'])}"]
    if report.get("not_compared"):
        out.append(f"not compared (the output's shape differs, so dout cannot reach the backward): "
                   f"{', '.join(report['not_compared'])}")
    if m is not None:
        out.append(f"diagnosis: {report['diagnosis']}")
    out += [f"note: {n}" for n in report["notes"]]
    out.append(verdict_line(report))
    return out


def _config(config):
    return ", ".join(f"{k}={v!r}" for k, v in config.items())


def message(report):
    """The AssertionError text of assert_layer_matches_keras: the mismatch, its element and the diagnosis."""
    return "\n".join(line for line in lines(report) if not line.startswith("note:"))

"""One training step compared: the numpy side's values, the tolerances from Keras's values, and the
comparison in order (the weights entering the step, every layer's output, the loss, every gradient,
the weights after the update), stopping at the first element outside its tolerance.

Words used throughout: `numpy`, the numpy side's values of a step ({weights, forward, loss, grads,
updated}); `keras`, Keras's values of the same step ({weights_in, zs, activations, loss, grads,
weights_out}), from a live Keras step or a golden file; `tol`, the tolerances of each quantity.
"""
import numpy as np

from numpy_impl.losses import smooth_labels

from . import diagnosis, protocol, tolerance
from .diagnosis import locate
from .errors import InputError
from .names import layer_output_names, weight_names
from .rounding import UNIT_ROUNDOFF
from .tally import Stop, Tally
from .update_tolerance import UpdateTolerance


def step_bounds(spec, keras, X, y, u, backend, float32_inputs=False, input_gap=None, numpy_forward=None):
    """The forward, loss and gradient tolerances of one step (or a stack of steps) from Keras's values:
    the recipe every comparison uses (compare/tolerance.py holds the propagation).

    float32_inputs: Keras rounds the inputs it is given to float32 (computing in float32), so X carries
    an error of u·|X|. input_gap: how far apart the two sides' entering weights are (None: identical).
    numpy_forward: the numpy side's layer outputs, which decide its branch at a kink (None: unknown).
    """
    config = spec["loss_config"]
    y_used = smooth_labels(y, spec["loss"], config.get("label_smoothing", 0.0))
    return tolerance.step_tolerances(keras["weights_in"], spec["activations"], X, y_used, keras["zs"],
                                     keras["activations"], u, input_gap, numpy_forward=numpy_forward, loss=spec["loss"],
                                     loss_config=config, backend=backend,
                                     x_error=u * np.abs(X) if float32_inputs else 0.0,
                                     loss_scale=spec.get("loss_scale", 1.0), loss_value=keras["loss"])


class Stepper:
    """A check's comparisons, step by step: the tally, the optimizer-state tracker of the update
    tolerance, the step being compared (`current`, for the report and the referee), and how far the
    check got (`checked`, `epoch`, `stop`)."""

    def __init__(self, network, spec, dtype, computed, backend, notes, history):
        self.network, self.spec, self.dtype, self.computed, self.backend = network, spec, dtype, computed, backend
        self.notes = notes
        self.n_layers = len(spec["activations"])
        self.names = weight_names(2 * self.n_layers)
        self.shapes = [w.shape for w in protocol.weights_of(network, self.n_layers)]
        self.u, self.lr = UNIT_ROUNDOFF[computed], spec["learning_rate"]
        if computed != dtype:
            notes.append(f"Keras on {backend} computes in {computed} although {dtype} was requested "
                         "(keras-team/keras issue 23704; found by a probe step from values that are not exact in "
                         f"{computed}): compared with {computed} tolerances, with the rounding of its inputs to "
                         f"{computed} included")
        self.update_tolerance = UpdateTolerance(spec["optimizer"], spec["optimizer_config"], self.lr, self.u)
        self.tally = Tally(history)
        self.stop, self.checked, self.epoch = None, 0, 0
        self.first = self.current = self.previous = None

    # --- the numpy side --------------------------------------------------------------------------
    def numpy_step(self, X, y, rows, weights=None):
        """One step of the numpy network on the rows `rows` of X and y: {weights, forward, loss, grads,
        updated}, copied as they come, up to where its protocol broke; the InputError is kept as "error"
        and raised when the comparison reaches that point.

        Each call gets read-only copies of its batch, gathered for it alone: a network that writes to
        them raises (a protocol error that says so), and one that gets around that changes only its own
        copy, never the arrays Keras computes from."""
        numpy = {}
        batch = lambda a: protocol.read_only(a[rows])  # noqa: E731
        try:
            numpy["weights"] = weights if weights is not None else copies(
                protocol.weights_of(self.network, self.n_layers))
            shapes = [(len(rows), n) for n in self.spec["sizes"][1:]]

            def outputs(got, name, combined):  # kept at once: compared even if the gradients then break the protocol
                numpy["forward"] = copies(protocol.checked_list(got, shapes, name, "are" if combined else "returned"))
                return numpy["forward"]
            _, result, what = protocol.outputs_and_gradients(self.network, lambda: batch(X), lambda: batch(y), outputs)
            if what == protocol.COMBINED_CALL and protocol.COMBINED_NOTE not in self.notes:
                self.notes.append(protocol.COMBINED_NOTE)
            loss, grads = protocol.checked_gradients(result, self.shapes, what)
            numpy["loss"], numpy["grads"] = loss, copies(grads)
            protocol.call("network.apply_gradients(grads)", self.network.apply_gradients, grads)
            numpy["updated"] = copies(protocol.weights_of(self.network, self.n_layers))
        except InputError as exc:
            numpy["error"] = exc
        return numpy

    # --- tolerances --------------------------------------------------------------------------------
    def tolerances(self, keras, X, y, input_gap, numpy_forward):
        """The step's (or the stacked steps') tolerances: forward, loss, grads (step_bounds) and updated."""
        tol = step_bounds(self.spec, keras, X, y, self.u, self.backend, self.computed == "float32", input_gap,
                          numpy_forward)
        tracker = self.update_tolerance
        if X.ndim == 2 or not tracker.keeps_state:
            tol["updated"] = tracker.step(keras["weights_in"], keras["grads"], tol["grads"], keras["weights_out"],
                                          self.lr, input_gap)
            # the optimizer's state before the step (for the diagnosis); a stack's: none (it keeps none)
            tol["state"] = tracker.before if X.ndim == 2 else (None,) * len(X)
        else:  # the optimizer's state gap is a recurrence: step by step, in order
            per_step, states = [], []
            for k in range(len(X)):
                per_step.append(tracker.step(*([a[k] for a in keras[key]] for key in ("weights_in", "grads")),
                                             [t[k] for t in tol["grads"]], [w[k] for w in keras["weights_out"]],
                                             self.lr, None if input_gap is None else [g[k] for g in input_gap]))
                states.append(tracker.before)
            tol["updated"] = [np.stack([t[i] for t in per_step]) for i in range(len(self.shapes))]
            tol["state"] = tuple(states)  # a tuple: chunks.at(tol, k) takes step k's
        return tol

    def entering_tolerance(self, weights):
        """Tolerance on the entering weights in synced mode: 0, or their rounding to float32 where Keras computes in it."""
        if self.computed == "float32":
            return [self.u * np.abs(w) for w in weights]
        return [np.zeros((1,) * w.ndim) for w in weights]

    def input_gap(self, weights):
        """The gap between the two sides' inputs in synced mode: none, or Keras's rounding of them to float32."""
        return [self.u * np.abs(w) for w in weights] if self.computed == "float32" else None

    # --- one step, in full -------------------------------------------------------------------------
    def compare_entering(self, step, X, y, weights, keras, entering_tol):
        """Open step `step` (kept for the report and the referee) and compare the weights entering it."""
        self.tally.begin_step()
        self.current = {"step": step, "X": X, "y": y, "weights": weights, "keras": keras, "numpy": {}}
        self.first = self.first or self.current
        self.tally.compare(step, "weights", "entering", self.names, weights, keras["weights_in"], entering_tol)

    def compare_step(self, step, X, y, numpy, keras, tol, entering_tol, entering=True):
        """Compare one step in order (entering weights, outputs, loss, gradients, updated weights);
        raise Stop with the diagnosis at the first mismatch, or the numpy side's protocol error."""
        tally, names = self.tally, self.names
        if entering:
            self.compare_entering(step, X, y, numpy["weights"], keras, entering_tol)
        current = self.current
        current["tol"] = tol
        current["numpy"] = {k: v for k, v in numpy.items() if k != "error"}  # all of it, for the localisation
        try:
            if "forward" not in numpy:
                raise numpy["error"]
            tally.compare(step, "forward", None, layer_output_names(self.n_layers), numpy["forward"],
                          keras["activations"], tol["forward"])
            if "grads" not in numpy:
                raise numpy["error"]
            tally.compare(step, "loss", None, ["loss"], [np.float64(numpy["loss"])], [np.float64(keras["loss"])],
                          [np.float64(tol["loss"])])
            tally.compare(step, "gradient", None, ["d" + n for n in names], numpy["grads"], keras["grads"],
                          tol["grads"])
            if "updated" not in numpy:
                raise numpy["error"]
            tally.compare(step, "weights", "updated", names, numpy["updated"], keras["weights_out"], tol["updated"])
        except Stop as stop:
            if stop.mismatch and not stop.nonfinite:
                self.explain(stop)
            raise
        self.checked = step + 1
        self.previous = current
        tally.end_step(numpy["loss"], keras["loss"])

    def explain(self, stop):
        """The failing step's diagnosis (compare/diagnosis) and localisation, set on the Stop."""
        ctx = diagnosis.context(self.current, self.spec, self.u, self.backend, self.previous, step_bounds)
        m = stop.mismatch
        stop.diagnosis, stop.causes = diagnosis.diagnose(m["quantity"], m.get("phase"), ctx)
        stop.tensors = locate.statuses(ctx)
        stop.location = locate.locate(ctx, stop.tensors)


def copies(arrays):
    """Copies of the arrays, so that nothing the network keeps can change them later."""
    return [np.array(a) for a in arrays]

"""The embedding lookup as a forward/backward function pair, in CS231n's style (word_embedding_*).

x holds integer ids (N, T), W the table (V, D); out (N, T, D). Keras's Embedding(V, D) holds the
same table as its `embeddings` and computes `ops.take(embeddings, x, axis=0)`; its gradient is an
IndexedSlices whose dense form (tf.convert_to_tensor) sums the rows of repeated ids.
"""
import numpy as np


def embedding_forward(x, W):
    """out[n, t] = W[x[n, t]]; returns (out, cache). Ids outside [0, V) are refused, as TensorFlow on CPU does."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"embedding ids must be integers; received x.dtype={x.dtype}")
    bad = x[(x < 0) | (x >= W.shape[0])]
    if bad.size:
        raise ValueError(f"embedding id {bad.flat[0]} is outside [0, {W.shape[0]}) (V={W.shape[0]} rows in W)")
    return W[x], (x, W.shape)


def embedding_backward(dout, cache):
    """dW[v] = Σ_{n,t : x[n, t] = v} dout[n, t]: every occurrence of an id adds its gradient (np.add.at)."""
    x, W_shape = cache
    dW = np.zeros(W_shape, dtype=dout.dtype)
    np.add.at(dW, x, dout)
    return dW

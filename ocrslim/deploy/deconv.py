"""Two chained kernel-2 stride-2 transposed convs (the DB head) as two 1x1 convs and a shuffle by 4.

Input pixel (i, j) gives output pixels (4i + 2di + di2, 4j + 2dj + dj2): each input pixel owns its own
4x4 output block, so nothing overlaps. The first 1x1 conv computes the four (di, dj) positions of
the first transposed conv as channel groups; the second maps each group to its four (di2, dj2)
positions, in the channel order of a shuffle by 4 (Paddle's pixel_shuffle, ONNX's DepthToSpace in
CRD mode). paddle_passes and onnx_passes both rewrite with these weights.
"""
import numpy as np


def pair_as_pointwise(w_a, bias_a, w_b, bias_b):
    """(w1 [4*Ca, Cin, 1, 1], b1, w2 [16*Cb, 4*Ca, 1, 1], b2) for transposed-conv weights
    w_a [Cin, Ca, 2, 2] and w_b [Ca, Cb, 2, 2] and their biases, in float64."""
    c_in, c_a, c_b = w_a.shape[0], w_a.shape[1], w_b.shape[1]
    # first: output channel (2*di + dj) * c_a + c holds output pixel (2i + di, 2j + dj)
    w1 = w_a.transpose(2, 3, 1, 0).reshape(4 * c_a, c_in, 1, 1)
    # second: from group (di, dj) to channel cb*16 + (2*di + di2)*4 + (2*dj + dj2)
    w2 = np.zeros((16 * c_b, 4 * c_a, 1, 1))
    for di in range(2):
        for dj in range(2):
            group = slice((2 * di + dj) * c_a, (2 * di + dj + 1) * c_a)
            for di2 in range(2):
                for dj2 in range(2):
                    rows = np.arange(c_b) * 16 + (2 * di + di2) * 4 + (2 * dj + dj2)
                    w2[rows, group, 0, 0] = w_b[:, :, di2, dj2].T
    return w1, np.tile(bias_a, 4), w2, np.repeat(bias_b, 16)

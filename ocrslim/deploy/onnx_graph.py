"""One graph for ONNX models: what the onnxruntime rewrites (onnx_passes) read and change."""
import collections

import numpy as np


class OnnxGraph:
    """The nodes and constants of an ONNX graph, with Constant nodes turned into initializers.

    Passes change the protobuf nodes in place (their input lists), so the
    index is not cached: producers() and readers() are computed when asked,
    once per pass, and save() drops what nothing reads and orders the nodes.
    """

    def __init__(self, model):
        from onnx import numpy_helper
        self.model, self.graph = model, model.graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.nodes = []
        for n in self.graph.node:
            if n.op_type == "Constant" and n.attribute[0].name == "value":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
            else:
                self.nodes.append(n)
        self._uid = 0

    @classmethod
    def load(cls, path):
        import onnx
        return cls(onnx.load(path))

    def const(self, array, base):
        self._uid += 1
        name = f"{base}__fp{self._uid}"
        self.consts[name] = array
        return name

    def producers(self):
        return {o: n for n in self.nodes for o in n.output}

    def readers(self):
        out = collections.defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                out[i].append(n)
        for o in self.graph.output:
            out[o.name].append(None)  # None: read by the graph output
        return out

    def scalar(self, name):
        a = self.consts.get(name)
        return float(a.ravel()[0]) if a is not None and a.size == 1 else None

    def save(self, path):
        import onnx
        from onnx import numpy_helper
        # drop what nothing reads any more, then order the nodes (rewrites append nodes at the end)
        while True:
            readers = self.readers()
            kept = [n for n in self.nodes if any(readers[o] for o in n.output)]
            if len(kept) == len(self.nodes):
                break
            self.nodes = kept
        ready = set(self.consts) | {i.name for i in self.graph.input} | {""}
        ordered, pending = [], list(self.nodes)
        while pending:
            left = []
            for n in pending:
                if all(i in ready for i in n.input):
                    ordered.append(n)
                    ready.update(n.output)
                else:
                    left.append(n)
            if len(left) == len(pending):
                raise ValueError("graph has a cycle or a missing input")
            pending = left
        used = {i for n in ordered for i in n.input}
        del self.graph.initializer[:]
        self.graph.initializer.extend(numpy_helper.from_array(a, k) for k, a in self.consts.items() if k in used)
        del self.graph.node[:]
        self.graph.node.extend(ordered)
        onnx.checker.check_model(self.model)
        onnx.save(self.model, path)


def attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def dequantized(g, dq):
    """Float value of a DequantizeLinear of a constant (weights, bias)."""
    q = g.consts[dq.input[0]].astype(np.float64)
    s = g.consts[dq.input[1]].astype(np.float64)
    z = g.consts[dq.input[2]].astype(np.float64) if len(dq.input) > 2 and dq.input[2] else 0.0
    if s.size > 1:
        shape = [1] * q.ndim
        shape[attrs(dq).get("axis", 1)] = -1
        s = s.reshape(shape)
        z = np.reshape(z, shape) if np.ndim(z) else z
    return (q - z) * s

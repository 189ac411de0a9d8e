"""An MLServer runtime for an ONNX model on onnxruntime, copied beside ``model.onnx`` into each
onnx version folder (``serving.layout``): MLServer imports it from there, so the model server venv
needs no aq-airflow. On KServe it runs in the cluster's ``aq-mlserver-onnx`` runtime.

A request's columns (the pandas codec) feed the graph: one input per column when the graph has
them by name, else the columns side by side as the graph's one input tensor. Every tensor output
is answered (a ZipMap's list of dicts is not a tensor: convert without it).
"""

import numpy as np
import onnxruntime
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

_NUMPY = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_, "tensor(string)": np.object_,
}  # fmt: skip


class OnnxModel(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings, wellknown_filenames=["model.onnx"])
        self._session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        frame = self.decode_request(payload, default_codec=PandasCodec)
        names = [output.name for output in self._session.get_outputs()]
        results = self._session.run(None, self._feeds(frame))
        outputs = [
            NumpyCodec.encode_output(name, value)
            for name, value in zip(names, results, strict=True)
            if isinstance(value, np.ndarray)
        ]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)

    def _feeds(self, frame) -> dict:
        inputs = self._session.get_inputs()
        if len(inputs) == 1 and inputs[0].name not in frame.columns:
            return {inputs[0].name: frame.to_numpy().astype(_NUMPY[inputs[0].type])}
        feeds = {}
        for item in inputs:
            values = frame[item.name].to_numpy().astype(_NUMPY[item.type])
            feeds[item.name] = values.reshape(-1, 1) if len(item.shape) == 2 else values
        return feeds

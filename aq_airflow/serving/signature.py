"""A served model's inputs, the Open Inference Protocol request of sample rows, and the check of
its response.

The signature is the model's input columns in order, each with its Open Inference Protocol (v2)
datatype, taken from the sample table's Arrow schema: what the serve task records beside the model
(``signature.json``), what the smoke test sends, and what a client needs to know to call the
endpoint. Requests use MLServer's pandas codec (one input per column, ``content_type: pd``), the
way a model fit on a DataFrame is called in-process.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

#: Arrow types and their Open Inference Protocol datatypes
_INTEGERS = {8: "INT8", 16: "INT16", 32: "INT32", 64: "INT64"}
_UNSIGNED = {8: "UINT8", 16: "UINT16", 32: "UINT32", 64: "UINT64"}
_FLOATS = {16: "FP16", 32: "FP32", 64: "FP64"}
#: a response's prediction: numbers or booleans (class labels as text are not a prediction a
#: pipeline's sklearn, xgboost or lightgbm model gives; a BYTES output means a broken model)
NUMERIC = {*_INTEGERS.values(), *_UNSIGNED.values(), *_FLOATS.values(), "BOOL"}
#: each datatype's Arrow type, for the values a request carries
_ARROW = {
    "BOOL": pa.bool_(), "INT8": pa.int8(), "INT16": pa.int16(), "INT32": pa.int32(), "INT64": pa.int64(),
    "UINT8": pa.uint8(), "UINT16": pa.uint16(), "UINT32": pa.uint32(), "UINT64": pa.uint64(),
    "FP16": pa.float32(), "FP32": pa.float32(), "FP64": pa.float64(), "BYTES": pa.string(),
}  # fmt: skip


def oip_datatype(column: str, arrow: pa.DataType) -> str:
    """The Open Inference Protocol datatype of a column of Arrow type ``arrow``; a type no model
    input takes (dates, lists, ...) is an error naming the column."""
    if pa.types.is_dictionary(arrow):
        arrow = arrow.value_type
    if pa.types.is_boolean(arrow):
        return "BOOL"
    if pa.types.is_signed_integer(arrow):
        return _INTEGERS[arrow.bit_width]
    if pa.types.is_unsigned_integer(arrow):
        return _UNSIGNED[arrow.bit_width]
    if pa.types.is_floating(arrow):
        return _FLOATS[arrow.bit_width]
    if pa.types.is_decimal(arrow):  # as a step reads it in pandas: an integer at scale 0, else a float
        return "INT64" if arrow.scale == 0 else "FP64"
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow):
        return "BYTES"
    raise ValueError(
        f"column `{column}` is {arrow}: a served model's inputs are numbers, booleans or text; cast it in the "
        "step that makes the sample table, or leave it out of the model's columns (`columns:` under serve:)"
    )


@dataclass(frozen=True)
class Signature:
    """The model's inputs, in order: (column, Open Inference Protocol datatype)."""

    inputs: tuple[tuple[str, str], ...]

    @classmethod
    def of_schema(cls, schema: pa.Schema, columns: tuple[str, ...] | list[str]) -> Signature:
        """The signature of ``columns`` of a table of ``schema``."""
        return cls(tuple((name, oip_datatype(name, schema.field(name).type)) for name in columns))

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.inputs]

    def to_json(self) -> str:
        return json.dumps({"inputs": [{"name": n, "datatype": t} for n, t in self.inputs]}, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> Signature:
        data = json.loads(text)
        return cls(tuple((item["name"], item["datatype"]) for item in data["inputs"]))


def inference_request(rows: pa.Table, signature: Signature) -> dict:
    """An Open Inference Protocol request of ``rows`` (a table holding the signature's columns):
    one input per column, decoded by the server into a DataFrame (the pandas codec)."""
    inputs = []
    for name, datatype in signature.inputs:
        values = rows.column(name)
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if pa.types.is_decimal(values.type):  # through text: 19.99 stays 19.99 (as artifacts.values reads it)
            values = values.cast(pa.string())
        item: dict[str, Any] = {
            "name": name,
            "shape": [rows.num_rows],
            "datatype": datatype,
            "data": values.cast(_ARROW[datatype]).to_pylist(),
        }
        if datatype == "BYTES":
            item["parameters"] = {"content_type": "str"}
        inputs.append(item)
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


def response_problem(response: Any, rows: int) -> str | None:
    """What is wrong with an inference ``response`` to a request of ``rows`` rows, or None: its
    first output must hold a number or boolean per row."""
    outputs = response.get("outputs") if isinstance(response, dict) else None
    if not outputs or not isinstance(outputs, list) or not isinstance(outputs[0], dict):
        return "the response has no outputs"
    first = outputs[0]
    shape, datatype, data = first.get("shape"), first.get("datatype"), first.get("data")
    if not isinstance(shape, list) or not shape or shape[0] != rows:
        return f"its first output `{first.get('name')}` has shape {shape}, not {rows} rows"
    if datatype not in NUMERIC:
        return f"its first output `{first.get('name')}` is {datatype}, not numbers or booleans"
    if not isinstance(data, list) or len(data) < rows:
        return f"its first output `{first.get('name')}` holds {len(data) if isinstance(data, list) else 'no'} values"
    bad = [value for value in data if not _finite(value)]
    if bad:  # NaN (JSON null once encoded), infinity, text: not a prediction
        return (
            f"its first output `{first.get('name')}` holds {len(bad)} of {len(data)} values that are not finite "
            f"numbers (e.g. {bad[0]!r}): the model predicts no number for those rows"
        )
    return None


def _finite(value: Any) -> bool:
    if isinstance(value, list):  # a nested shape's row
        return all(_finite(item) for item in value)
    return isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value))

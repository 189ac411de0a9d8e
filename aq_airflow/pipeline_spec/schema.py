"""The JSON schema of a spec file, generated from the models (``aq-airflow schema``).

Editors (yaml-language-server) and CI validators check specs against it, so it must accept every
spec the loader accepts and reject what the loader refuses for its shape: the models' own types
say most of it; this generator adds the one rule pydantic leaves out.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from aq_airflow.pipeline_spec.models import Pipeline


class _SpecSchema(GenerateJsonSchema):
    """Names used as keys (steps, params, env, inputs, columns) keep their pattern as a rule on the
    key: pydantic writes it as ``patternProperties``, which lets a key that does not match (a step
    `a-b`, refused by the loader) through unchecked."""

    def dict_schema(self, schema: core_schema.DictSchema) -> dict[str, Any]:
        json = super().dict_schema(schema)
        patterns = json.get("patternProperties", {})
        if len(patterns) == 1:
            ((pattern, values),) = patterns.items()
            json.pop("patternProperties")
            json["propertyNames"] = {**json.get("propertyNames", {}), "pattern": pattern}
            json["additionalProperties"] = values
        return json


def json_schema() -> dict:
    """The JSON schema of a spec file, as editors and ``check-jsonschema`` read it."""
    schema = Pipeline.model_json_schema(by_alias=True, schema_generator=_SpecSchema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema

"""Load YAML files into typed pydantic models with one-line errors.

Every user-edited file (robot.yaml, rewards/*.yaml, later randomization
profiles and deploy files) goes through ``load_yaml_model`` so that a typo or an
out-of-range value is reported the same way: file, field, value, what is allowed.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from simrl.errors import SimrlError, did_you_mean

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


class StrictModel(pydantic.BaseModel):
    """Base for config models: unknown keys are errors, values are immutable, NaN and inf are refused."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning I/O and syntax problems into ``SimrlError``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SimrlError(f"{path}: file not found") from None
    except OSError as exc:
        raise SimrlError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SimrlError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})") from None


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _unwrap(annotation: Any) -> Any:
    """The model class or ``dict[...]`` inside ``Optional[...]`` / ``Union[...]`` (else the annotation)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) is dict or (isinstance(arg, type) and issubclass(arg, pydantic.BaseModel)):
                return arg
    return annotation


def _allowed_keys(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Names of the fields valid next to the unknown key at ``loc``, through optional fields and dicts of models."""
    current: Any = model
    for part in loc[:-1]:
        current = _unwrap(current)
        if typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]  # ``part`` is a key of the dict
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(_unwrap(current), "model_fields", None)
    return sorted(fields) if fields else []


def format_validation_error(path: Path, model: type[pydantic.BaseModel], exc: pydantic.ValidationError) -> str:
    """One line for the first error: file, field, offending value, what is allowed.

    An unknown key is reported before anything else: a typo'd name also makes
    the intended field "missing", and the unknown key is the actual mistake.
    """
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(err["loc"])
    field = _field_path(loc)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(model, loc)
        suggestion = did_you_mean(key, allowed, lead="; ")
        return f"{path}: unknown field '{field}'{suggestion} (allowed: {', '.join(allowed)})"
    if err["type"] == "missing":
        return f"{path}: missing required field '{field}'"
    message = err["msg"].removeprefix("Value error, ")
    return f"{path}: field '{field}' = {err.get('input')!r}: {message}"


def validate_model(path: Path, model: type[ModelT], data: Any) -> ModelT:
    """Validate already-parsed data, attributing errors to ``path``."""
    try:
        return model.model_validate(data if data is not None else {})
    except pydantic.ValidationError as exc:
        raise SimrlError(format_validation_error(path, model, exc)) from None


def load_yaml_model(path: Path, model: type[ModelT]) -> ModelT:
    """Read ``path`` and validate it against ``model``."""
    return validate_model(path, model, read_yaml(path))

"""Load YAML files into typed pydantic models with one-line errors.

Every user-edited file (robot.yaml, rewards/*.yaml, later randomization
profiles and deploy files) goes through ``load_yaml_model`` so that a typo or an
out-of-range value is reported the same way: file, field, value, what is allowed.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union

import pydantic
from pydantic.fields import FieldInfo
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


# Tags of the two branches of ``one_or_list``; pydantic puts them into error locations, ``_walk`` takes them out.
ONE, MANY = "one", "list"


def _tag(value: Any) -> str:
    return MANY if isinstance(value, list) else ONE


def one_or_list(model: type[pydantic.BaseModel]) -> Any:
    """A field type: one ``model`` (a mapping) or a non-empty list of them, chosen by the input's shape.

    A plain union would report a mistake against both branches; the tagged
    union reports it against the one the user wrote (errors read ``kind.low``
    or ``kind.1.low``).
    """
    return Annotated[
        Union[Annotated[model, pydantic.Tag(ONE)], Annotated[list[model], pydantic.Tag(MANY), pydantic.Field(min_length=1)]],  # type: ignore[valid-type]
        pydantic.Discriminator(_tag),
    ]


def _unwrap(annotation: Any) -> Any:
    """``X`` for ``Optional[X]``; in a wider union the first model or ``dict[...]`` (else the annotation)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
        for arg in args:
            if typing.get_origin(arg) is dict or (isinstance(arg, type) and issubclass(arg, pydantic.BaseModel)):
                return arg
    return annotation


def _tagged_branches(annotation: Any) -> dict[str, Any] | None:
    """``{tag: branch}`` of a tagged union (``one_or_list``), else None."""
    if typing.get_origin(annotation) is not Annotated:
        return None
    inner, *extras = typing.get_args(annotation)
    if not any(isinstance(extra, pydantic.Discriminator) for extra in extras):
        return None
    branches = {}
    for branch in typing.get_args(inner):
        base, *marks = typing.get_args(branch)
        tag = next(mark.tag for mark in marks if isinstance(mark, pydantic.Tag))
        branches[tag] = base
    return branches


def _field_discriminator(annotation: Any) -> tuple[Any, str | None]:
    """``(X, "kind")`` for ``Annotated[X, Field(discriminator="kind")]`` (a list item's tagged union), else ``(annotation, None)``."""
    if typing.get_origin(annotation) is Annotated:
        inner, *extras = typing.get_args(annotation)
        for extra in extras:
            if isinstance(extra, FieldInfo) and isinstance(extra.discriminator, str):
                return inner, extra.discriminator
    return annotation, None


def _field_tagged_branches(annotation: Any, discriminator: str | None) -> dict[str, Any] | None:
    """``{tag: model}`` of a union tagged by a field (``Field(discriminator="kind")``, the tag a ``Literal``), else None."""
    if discriminator is None:
        return None
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    members = typing.get_args(annotation) if union else (annotation,)
    return {tag: member for member in members for tag in typing.get_args(member.model_fields[discriminator].annotation)}


def _walk(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """``loc`` without union tags, and the annotation it ends at (None where the models do not say).

    Steps through optional fields, model fields, dict values, list items and
    tagged unions (``one_or_list``, and those keyed on a field such as ``kind``).
    """
    current: Any = model
    discriminator: str | None = None  # the field tagging the union ``current`` is, if it is one
    clean: list[Any] = []
    for part in loc:
        branches = _field_tagged_branches(current, discriminator)
        if branches is None:
            current = _unwrap(current)
            branches = _tagged_branches(current)
        discriminator = None
        if branches is not None and part in branches:
            current = branches[part]
            continue
        clean.append(part)
        if typing.get_origin(current) in (dict, list):
            current, discriminator = _field_discriminator(typing.get_args(current)[-1])
            continue
        fields = getattr(current, "model_fields", None)
        if fields is not None and part in fields:
            current, discriminator = fields[part].annotation, fields[part].discriminator
        else:
            current = None
    return tuple(clean), _unwrap(current)


def _allowed_keys(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Names of the fields a file may give next to the unknown key at ``loc`` (a field left out of dumps is set by the code, not the file)."""
    _, parent = _walk(model, loc[:-1])
    fields = getattr(parent, "model_fields", None)
    return sorted(name for name, field in fields.items() if not field.exclude) if fields else []


def format_validation_error(path: Path, model: type[pydantic.BaseModel], exc: pydantic.ValidationError) -> str:
    """One line for the first error: file, field, offending value, what is allowed.

    An unknown key is reported before anything else: a typo'd name also makes
    the intended field "missing", and the unknown key is the actual mistake.
    """
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(err["loc"])
    field = _field_path(_walk(model, loc)[0])
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(model, loc)
        suggestion = did_you_mean(key, allowed, lead="; ")
        return f"{path}: unknown field '{field}'{suggestion} (allowed: {', '.join(allowed)})"
    if err["type"] == "missing":
        return f"{path}: missing required field '{field}'"
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):  # a union keyed on a field (``kind``): name that field
        key = err["ctx"]["discriminator"].strip("'")
        if err["type"] == "union_tag_not_found":
            return f"{path}: missing required field '{field}.{key}'"
        tag = err["ctx"]["tag"]
        allowed = [t.strip().strip("'") for t in err["ctx"]["expected_tags"].split(",")]
        return f"{path}: field '{field}.{key}' = {tag!r}: unknown {key}{did_you_mean(tag, allowed)}; allowed: {', '.join(allowed)}"
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

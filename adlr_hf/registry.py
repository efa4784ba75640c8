"""The registered families (their `FamilySpec`s) and everything derived from them: Auto-class registration, the
named variants (`get_config`, `adlr-hf list`), converters and the lookup from a config's `model_type` to its family.

`adlr_hf.models.FAMILIES` is registered when `adlr_hf` is imported. A family outside the package registers itself
with `adlr_hf.register_family(SPEC)`; to make launchers' ranks import it too, name its module in the environment
variable `ADLR_HF_PLUGINS` (comma-separated modules) or as an `adlr_hf.plugins` entry point of an installed package.
"""

from __future__ import annotations

import difflib
import importlib
import os
from importlib.metadata import entry_points

from .family import Converter, FamilySpec, Variant, already_registered

PLUGINS_ENV = "ADLR_HF_PLUGINS"
PLUGIN_GROUP = "adlr_hf.plugins"

_FAMILIES: dict[str, FamilySpec] = {}
_VARIANTS: dict[str, tuple[FamilySpec, Variant]] = {}


def register_family(spec: FamilySpec) -> FamilySpec:
    """Register `spec` with adlr_hf and with transformers' Auto classes (also for `trust_remote_code` loading of the
    folders its models save). Registering the same spec again is a no-op; another family under a taken name, model
    type or variant name is an error."""
    import transformers

    if already_registered(_FAMILIES, spec.name, spec, "family"):
        return spec
    if any(other.model_type == spec.model_type for other in _FAMILIES.values()):
        raise ValueError(f"model_type {spec.model_type!r} of family {spec.name!r} is already registered; give its "
                         "config class another model_type")
    for variant in spec.variants:
        if variant.name in _VARIANTS:
            raise ValueError(f"variant {variant.name!r} of family {spec.name!r} is already registered by family "
                             f"{_VARIANTS[variant.name][0].name!r}; rename it")
    _check_config_name(spec)
    for auto_name in spec.models:
        if not hasattr(transformers, auto_name):
            raise ValueError(f"family {spec.name!r} maps models to {auto_name!r}, which is not a transformers Auto "
                             "class; use e.g. AutoModel or AutoModelForCausalLM")
    transformers.AutoConfig.register(spec.model_type, spec.config_class, exist_ok=True)
    # Saved folders carry the code and an `auto_map`, so they also load with trust_remote_code=True.
    spec.config_class.register_for_auto_class()
    for auto_name, classes in spec.models.items():
        auto_class = getattr(transformers, auto_name)
        auto_class.register(spec.config_class, classes, exist_ok=True)
        for model_class in classes if isinstance(classes, tuple) else (classes,):
            model_class.register_for_auto_class(auto_name)
    if spec.register is not None:
        spec.register()
    if spec.tasks:
        from .tasks import register_task

        for task in spec.tasks:
            register_task(task)
    _FAMILIES[spec.name] = spec
    for variant in spec.variants:
        _VARIANTS[variant.name] = (spec, variant)
    return spec


def _check_config_name(spec: FamilySpec) -> None:
    """transformers' Auto classes find a config's model by the config class's *name* when the config class itself
    is not registered (as in a clean interpreter loading remote code): a name shared with a built-in config would
    load transformers' model for ours."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    name = spec.config_class.__name__
    if name in CONFIG_MAPPING_NAMES.values():
        raise ValueError(f"the config class of family {spec.name!r} is named {name!r}, like a transformers built-in "
                         "config; Auto classes would load transformers' model for it from remote code. Rename it "
                         "(e.g. with an 'Adlr' prefix)")


def model_class(spec: FamilySpec, auto_name: str, config=None) -> type:
    """The class `auto_name` builds for `config`. Where the family maps it to several classes: the one named by
    `config.architectures`, else the first (transformers' own rule)."""
    classes = spec.models[auto_name]
    if not isinstance(classes, tuple):
        return classes
    named = [c for c in classes if c.__name__ in (getattr(config, "architectures", None) or ())]
    return (named or classes)[0]


def family_auto_map(model) -> dict[str, str]:
    """`auto_map` entries ("module.Class") of every Auto class of `model`'s family, for its saved folder: the
    model's own class where it is one of an Auto class's classes, else `model_class`'s choice."""
    spec = family_for(model.config)
    if spec is None:
        return {}
    out = {}
    for auto_name, classes in spec.models.items():
        own = type(model) in (classes if isinstance(classes, tuple) else (classes,))
        chosen = type(model) if own else model_class(spec, auto_name, model.config)
        out[auto_name] = f"{chosen.__module__.rsplit('.', 1)[-1]}.{chosen.__name__}"
    return out


def load_plugins() -> None:
    """Import the modules named by `ADLR_HF_PLUGINS` and the `adlr_hf.plugins` entry points (they register
    families and tasks on import)."""
    names = [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            _plugin_failure(f"{PLUGINS_ENV} names module {name!r}, which cannot be imported ({err}); fix the "
                            "variable or install the module")
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
        except ImportError as err:
            _plugin_failure(f"the {PLUGIN_GROUP} entry point {entry.name!r} ({entry.value}) cannot be imported "
                            f"({err}); reinstall its package")


_PLUGIN_ERRORS: list[str] = []


def _plugin_failure(message: str) -> None:
    """A plug-in that cannot be imported: a warning for library users (importing adlr_hf still works), an error for
    the command line (`plugin_errors()`), reported before any work."""
    import warnings

    _PLUGIN_ERRORS.append(message)
    warnings.warn(message, stacklevel=3)


def plugin_errors() -> list[str]:
    return list(_PLUGIN_ERRORS)


def families() -> list[FamilySpec]:
    return list(_FAMILIES.values())


def get_family(name: str) -> FamilySpec:
    if name not in _FAMILIES:
        raise ValueError(f"unknown family {name!r}; registered: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def family_for(config_or_model_type) -> FamilySpec | None:
    """The family of a config (or a `model_type` string); None for models that are not adlr_hf's."""
    model_type = config_or_model_type if isinstance(config_or_model_type, str) else \
        getattr(config_or_model_type, "model_type", None)
    return next((spec for spec in _FAMILIES.values() if spec.model_type == model_type), None)


def get_variant(name: str) -> Variant:
    return _lookup_variant(name)[1]


def _lookup_variant(name: str) -> tuple[FamilySpec, Variant]:
    if name not in _VARIANTS:
        close = difflib.get_close_matches(name, list(_VARIANTS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model variant {name!r}.{hint} Run `adlr-hf list` for all variants.")
    return _VARIANTS[name]


def variant_family(name: str) -> FamilySpec:
    return _lookup_variant(name)[0]


def get_config(name: str, **overrides):
    """The config of a registered variant, with `overrides` applied on top."""
    spec, variant = _lookup_variant(name)
    return spec.config_class(**{**variant.config, **overrides})


def converters() -> dict[str, Converter]:
    """`adlr-hf convert` kinds of every registered family."""
    out: dict[str, Converter] = {}
    for spec in _FAMILIES.values():
        for converter in spec.converters:
            if converter.kind in out:
                raise ValueError(f"converter kind {converter.kind!r} is declared twice; rename one")
            out[converter.kind] = converter
    return out


def main_model_class(spec: FamilySpec):
    """The model class of the family's default task (the model `adlr-hf train` builds), else its first class."""
    from .tasks import get_task

    auto_name = get_task(spec.default_task).auto_class_name
    classes = spec.models.get(auto_name) or next(iter(spec.models.values()))
    return classes[0] if isinstance(classes, tuple) else classes


def count_parameters(model_or_config) -> int:
    """Parameters of a model (tied tensors once), or of the main model of a config, built on the meta device."""
    import torch

    model = model_or_config
    if not isinstance(model_or_config, torch.nn.Module):
        spec = family_for(model_or_config)
        if spec is None:
            raise ValueError(f"{type(model_or_config).__name__} is not the config of a registered family")
        with torch.device("meta"):
            model = main_model_class(spec)(model_or_config)
    # Tied parameters are shared objects and counted once by parameters().
    return sum(p.numel() for p in model.parameters())


def list_models() -> list[dict]:
    rows = []
    for name, (spec, variant) in _VARIANTS.items():
        rows.append({"name": name, "family": spec.name, "parameters": count_parameters(get_config(name)),
                     "description": variant.description})
    return rows

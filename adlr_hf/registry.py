"""Named variants of every family: name -> (family, config kwargs). `list_models()` feeds `adlr-hf list`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    name: str
    family: str
    config_kwargs: dict = field(default_factory=dict)
    description: str = ""


_VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> None:
    if variant.name in _VARIANTS:
        raise ValueError(f"variant {variant.name!r} is already registered")
    _VARIANTS[variant.name] = variant


def _gpt(name, layers, hidden, heads, description, **extra):
    register_variant(Variant(name, "megatron_gpt", dict(num_layers=layers, hidden_size=hidden,
                                                       num_attention_heads=heads, **extra), description))


# Megatron-LM (arXiv 1909.08053): Table 2 (355M, 2.5B, 8.3B) and the weak-scaling Table 1 sizes (1.2B ... 8.3B).
_gpt("megatron-gpt-tiny", 2, 64, 4, "for tests and demos", vocab_size=1024, max_position_embeddings=128,
     bos_token_id=0, eos_token_id=0)
_gpt("megatron-gpt-mini", 4, 256, 8, "demo size: trains in minutes on a laptop CPU", vocab_size=4096,
     max_position_embeddings=256, bos_token_id=0, eos_token_id=0)
_gpt("megatron-gpt-355m", 24, 1024, 16, "paper Table 2")
_gpt("megatron-gpt-1.2b", 40, 1536, 16, "paper Table 1, TP=1")
_gpt("megatron-gpt-2.5b", 54, 1920, 20, "paper Tables 1-2, TP=2")
_gpt("megatron-gpt-4.2b", 64, 2304, 24, "paper Table 1, TP=4")
_gpt("megatron-gpt-8.3b", 72, 3072, 32, "paper Tables 1-2, TP=8")
# The transformer LM of arXiv 1812.01207 (SentencePiece 32k + pad; positions 256); fine-tune it with
# `--task emotion-classification`.
_gpt("megatron-gpt-sentiment", 12, 768, 8, "arXiv 1812.01207 transformer LM (emotion fine-tuning)",
     vocab_size=32001, max_position_embeddings=256, bos_token_id=None, eos_token_id=None)


def _mlstm(name, hidden, embedding, description, **extra):
    register_variant(Variant(name, "mlstm", dict(hidden_size=hidden, embedding_size=embedding, **extra), description))


# The byte-level multiplicative LSTM baseline of arXiv 1812.01207 (vocabulary 257; pre-train with --task char-lm).
_mlstm("mlstm-tiny", 64, 16, "for tests and demos")
_mlstm("mlstm-4096", 4096, 64, "arXiv 1812.01207 mLSTM baseline")


def _bert(name, layers, hidden, heads, description, **extra):
    register_variant(Variant(name, "megatron_bert", dict(num_layers=layers, hidden_size=hidden,
                                                        num_attention_heads=heads, **extra), description))


# Megatron-BERT (arXiv 1909.08053, Table 4): pre-LN by default (the paper's reordering).
_bert("megatron-bert-tiny", 2, 64, 4, "for tests and demos", vocab_size=1024, max_position_embeddings=128)
_bert("megatron-bert-336m", 24, 1024, 16, "paper Table 4")
_bert("megatron-bert-1.3b", 24, 2048, 32, "paper Table 4")
_bert("megatron-bert-3.9b", 48, 2560, 40, "paper Table 4")


def _pd(name, arch, padding_mode, description, **extra):
    register_variant(Variant(name, "pd_resnet", dict(arch=arch, padding_mode=padding_mode, **extra), description))


# Partial-convolution padding (arXiv 1811.11718): PD-ResNet / PD-VGG and the zero/reflect/replicate padding ablation.
# ImageNet top-1 in the descriptions: the README's 5-run averages (1-crop) for the rows the paper reports.
_PD_TOP1 = {"resnet50": (76.611, 76.132, 76.174, 76.207), "resnet101": (78.192, 77.832, 77.852, 77.903),
            "resnet152": (78.432, 78.184, 77.805, 78.024), "vgg16-bn": (73.997, 73.681, 73.456, 73.756),
            "vgg19-bn": (75.129, 74.442, 74.004, 74.330)}
_pd("pd-resnet-tiny", "resnet18", "partial", "for tests and demos (CIFAR-sized)", depths=[1, 1, 1, 1], base_width=8,
    num_labels=10, image_size=32, resize_size=36)
_pd("pd-vgg-tiny", "vgg11", "partial", "for tests and demos (CIFAR-sized)", batch_norm=True, base_width=8,
    vgg_hidden_size=64, num_labels=10, image_size=32, resize_size=36)
for _arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg11-bn", "vgg13", "vgg13-bn",
              "vgg16", "vgg16-bn", "vgg19", "vgg19-bn"):
    _kwargs = {"batch_norm": True} if _arch.endswith("-bn") else {}
    _base = _arch.removesuffix("-bn")
    _top1 = _PD_TOP1.get(_arch)
    _pd(f"pd-{_arch}", _base, "partial", f"partial padding; ImageNet top-1 {_top1[0]}" if _top1 else
        "partial padding", **_kwargs)
    _pd(f"{_arch}-zeros", _base, "zeros", f"zero padding (torchvision); ImageNet top-1 {_top1[1]}" if _top1 else
        "zero padding (torchvision)", **_kwargs)
    if _top1:
        _pd(f"{_arch}-reflect", _base, "reflect", f"reflect padding ablation; ImageNet top-1 {_top1[2]}", **_kwargs)
        _pd(f"{_arch}-replicate", _base, "replicate", f"replicate padding ablation; ImageNet top-1 {_top1[3]}",
            **_kwargs)
del _arch, _kwargs, _base, _top1


def config_class_for(family: str):
    if family == "megatron_gpt":
        from .models.megatron_gpt import MegatronGPTConfig

        return MegatronGPTConfig
    if family == "megatron_bert":
        from .models.megatron_bert import MegatronBertConfig

        return MegatronBertConfig
    if family == "mlstm":
        from .models.emotion import MLSTMConfig

        return MLSTMConfig
    if family == "pd_resnet":
        from .models.pd_resnet import PDResNetConfig

        return PDResNetConfig
    raise ValueError(f"unknown family {family!r}")


def get_variant(name: str) -> Variant:
    if name not in _VARIANTS:
        close = difflib.get_close_matches(name, list(_VARIANTS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model variant {name!r}.{hint} Run `adlr-hf list` for all variants.")
    return _VARIANTS[name]


def get_config(name: str, **overrides):
    """The config of a registered variant, with `overrides` applied on top."""
    variant = get_variant(name)
    return config_class_for(variant.family)(**{**variant.config_kwargs, **overrides})


def count_parameters(config) -> int:
    """Parameters of the variant's main model, counted on a meta-device instance (no memory used)."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    # Tied parameters are shared objects and counted once by parameters().
    return sum(p.numel() for p in model.parameters())


def list_models() -> list[dict]:
    rows = []
    for variant in _VARIANTS.values():
        config = get_config(variant.name)
        rows.append({"name": variant.name, "family": variant.family, "parameters": count_parameters(config),
                     "description": variant.description})
    return rows

"""Tiny random sentence-transformers models, built locally (no hub), for hermetic tests."""

from __future__ import annotations

import string
from pathlib import Path

ARCHS = ("bert", "mpnet", "roberta", "xlm-roberta", "distilbert")
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
HIDDEN = 32
#: two heads of 16: the head size PackedMatMul can write heads-first (a multiple of 16), so the tiny models
#: exercise the packed graph's attention layouts too
HEADS = 2

_WORDS = (
    "the a an is are was of to in and on for with that this it by as at from model token vector "
    "search index hello world man playing guitar stage pizza love family code return café naïve "
    "relativity theory who what when where why how"
).split()
_EXTRA_CHARS = "éèàâçïôûüöäßÅåñ日本語中文한국어🍕🔥👍مرحباשלום—–…’“”"


def _wordpiece_vocab(specials: list[str]) -> dict[str, int]:
    chars = list(string.ascii_letters + string.digits + string.punctuation) + list(_EXTRA_CHARS)
    items = specials + chars + ["##" + c for c in chars if c.isalnum()] + _WORDS
    vocab: dict[str, int] = {}
    for t in items:
        vocab.setdefault(t, len(vocab))
    return vocab


def build_tokenizer(arch: str):
    if arch in ("bert", "distilbert"):
        from transformers import BertTokenizer, DistilBertTokenizer

        vocab = _wordpiece_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        cls = BertTokenizer if arch == "bert" else DistilBertTokenizer
        return cls(vocab=vocab, do_lower_case=True)
    if arch == "mpnet":
        from transformers import MPNetTokenizer

        vocab = _wordpiece_vocab(["<s>", "<pad>", "</s>", "[UNK]", "<mask>"])
        return MPNetTokenizer(vocab=vocab, do_lower_case=True)
    if arch == "roberta":
        from tokenizers import pre_tokenizers
        from transformers import RobertaTokenizer

        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
        vocab = {t: i for i, t in enumerate(specials + alphabet + ["Ġthe", "th", "Ġt", "he"])}
        return RobertaTokenizer(vocab=vocab, merges=[("Ġ", "t"), ("t", "h"), ("h", "e"), ("Ġt", "he")])
    if arch == "xlm-roberta":
        from transformers import XLMRobertaTokenizer

        pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
        chars = list(string.ascii_letters + string.digits + string.punctuation) + list(_EXTRA_CHARS)
        pieces += [("▁", -2.0)] + [(c, -5.0) for c in chars] + [("▁" + w, -3.0) for w in _WORDS]
        pieces.append(("<mask>", 0.0))
        return XLMRobertaTokenizer(vocab=pieces)
    raise ValueError(arch)


def build_config(arch: str, vocab_size: int, pad_id: int, max_pos: int = 64):
    import transformers as tf

    common = dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=64,
        initializer_range=0.2,
        pad_token_id=pad_id,
    )
    if arch == "bert":
        return tf.BertConfig(max_position_embeddings=max_pos, **common)
    if arch == "mpnet":
        return tf.MPNetConfig(max_position_embeddings=max_pos + 2, **common)
    if arch == "roberta":
        return tf.RobertaConfig(max_position_embeddings=max_pos + 2, **common)
    if arch == "xlm-roberta":
        return tf.XLMRobertaConfig(max_position_embeddings=max_pos + 2, **common)
    if arch == "distilbert":
        return tf.DistilBertConfig(
            vocab_size=vocab_size,
            dim=HIDDEN,
            n_layers=2,
            n_heads=HEADS,
            hidden_dim=64,
            max_position_embeddings=max_pos,
            initializer_range=0.2,
            pad_token_id=pad_id,
        )
    raise ValueError(arch)


def build_tiny_st(
    out_dir: Path,
    arch: str = "bert",
    pooling: str | tuple[str, ...] = "mean",
    dense: bool = False,
    normalize: bool = False,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    include_prompt: bool = True,
    max_seq_length: int = 24,
    seed: int = 0,
    weight_scale: float | None = None,
    outliers: float | None = None,
) -> Path:
    """Save a random sentence-transformers model to ``out_dir`` and return it."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import AutoModel

    out_dir = Path(out_dir)
    hf_dir = out_dir.parent / f"{out_dir.name}-hf"
    tok = build_tokenizer(arch)
    torch.manual_seed(seed)
    model = AutoModel.from_config(build_config(arch, len(tok), tok.pad_token_id))
    if weight_scale is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(weight_scale)
    if outliers is not None:
        # Activation channels of wildly different magnitudes (outlier features): the value projection's output
        # channels scaled and the attention output projection scaled back (both linear, no residual between),
        # so fp32 computes the same function while per-token int8 rounds the small channels to zero. BERT
        # only.
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in model.encoder.layer:
                # channel scales log-uniform in [1/outliers, outliers]
                f = outliers ** (2 * torch.rand(HIDDEN, generator=gen) - 1)
                value = layer.attention.self.value
                value.weight.mul_(f[:, None])
                value.bias.mul_(f)
                layer.attention.output.dense.weight.div_(f[None, :])
    model.save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    modules = [
        Transformer(str(hf_dir), max_seq_length=max_seq_length),
        Pooling(HIDDEN, pooling_mode=pooling, include_prompt=include_prompt),
    ]
    width = HIDDEN * (1 if isinstance(pooling, str) else len(pooling))
    if dense:
        modules.append(Dense(width, 16, activation_function=torch.nn.Tanh()))
    if normalize:
        modules.append(Normalize())
    st = SentenceTransformer(
        modules=modules, device="cpu", prompts=prompts, default_prompt_name=default_prompt_name
    )
    st.save(str(out_dir))
    return out_dir


CROSS_CLASSES = {
    "bert": "BertForSequenceClassification",
    "roberta": "RobertaForSequenceClassification",
    "xlm-roberta": "XLMRobertaForSequenceClassification",
    "distilbert": "DistilBertForSequenceClassification",
}


def build_tiny_cross(
    out_dir: Path,
    arch: str = "bert",
    num_labels: int = 1,
    max_length: int = 24,
    seed: int = 0,
    activation_fn=None,
    save_as: str = "st",
) -> Path:
    """Save a random cross-encoder (``*ForSequenceClassification``) to ``out_dir`` and return it.

    ``save_as="st"`` saves it with ``sentence_transformers.CrossEncoder.save`` (modules.json and
    config_sentence_transformers.json, as sentence-transformers >= 6 does); ``"hf"`` leaves the bare Hugging
    Face
    checkpoint (config.json + weights + tokenizer), as cross-encoders were published before
    sentence-transformers 4.
    """
    import torch
    import transformers as tf
    from sentence_transformers import CrossEncoder

    out_dir = Path(out_dir)
    hf_dir = out_dir if save_as == "hf" else out_dir.parent / f"{out_dir.name}-hf"
    tok = build_tokenizer(arch)
    cfg = build_config(arch, len(tok), tok.pad_token_id)
    cfg.num_labels = num_labels
    torch.manual_seed(seed)
    model = getattr(tf, CROSS_CLASSES[arch])(cfg)
    model.eval()
    # NOTE: tokenizer_config's model_max_length is where sentence-transformers reads a CrossEncoder's max
    # length.
    tok.model_max_length = max_length
    model.save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    if save_as == "hf":
        return out_dir
    ce = CrossEncoder(str(hf_dir), device="cpu", max_length=max_length, activation_fn=activation_fn)
    ce.save(str(out_dir))
    return out_dir


MLM_CLASSES = {
    "bert": "BertForMaskedLM",
    "roberta": "RobertaForMaskedLM",
    "xlm-roberta": "XLMRobertaForMaskedLM",
    "distilbert": "DistilBertForMaskedLM",
    "mpnet": "MPNetForMaskedLM",
}


def build_tiny_sparse(
    out_dir: Path,
    arch: str = "bert",
    pooling: str = "max",
    activation: str = "relu",
    max_seq_length: int = 24,
    prompts: dict[str, str] | None = None,
    max_active_dims: int | None = None,
    seed: int = 0,
    save_as: str = "st",
) -> Path:
    """Save a random SPLADE model (``*ForMaskedLM`` + SpladePooling) to ``out_dir`` and return it.

    ``save_as="hf"`` leaves the bare ``*ForMaskedLM`` checkpoint (what ``export-model --task sparse`` takes).
    """
    import torch
    import transformers as tf
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    out_dir = Path(out_dir)
    hf_dir = out_dir if save_as == "hf" else out_dir.parent / f"{out_dir.name}-hf"
    tok = build_tokenizer(arch)
    torch.manual_seed(seed)
    model = getattr(tf, MLM_CLASSES[arch])(build_config(arch, len(tok), tok.pad_token_id))
    model.eval()
    tok.model_max_length = max_seq_length
    model.save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    if save_as == "hf":
        return out_dir
    modules = [
        Transformer(str(hf_dir), transformer_task="fill-mask", max_seq_length=max_seq_length),
        SpladePooling(pooling_strategy=pooling, activation_function=activation),
    ]
    se = SparseEncoder(modules=modules, device="cpu", prompts=prompts, max_active_dims=max_active_dims)
    se.save(str(out_dir))
    return out_dir


def build_tiny_multivector(
    out_dir: Path,
    arch: str = "bert",
    dim: int = 16,
    normalize: bool = True,
    skiplist_words: list[str] | None = None,
    query_length: int | None = None,
    document_length: int | None = None,
    prompts: dict[str, str] | None = None,
    max_seq_length: int = 24,
    seed: int = 0,
    query_expansion: dict | None = None,
    keep_only_tokens: list[str] | None = None,
    mask_before_normalize: bool = False,
) -> Path:
    """Save a random ColBERT-style MultiVectorEncoder (Transformer, token-level Dense, Normalize,
    MultiVectorMask) to ``out_dir`` and return it. ``keep_only_tokens``: the documents' allowlist, as tokens
    of the tiny vocabulary. ``mask_before_normalize``: Transformer, Dense, MultiVectorMask, Normalize, the
    layout sentence-transformers gives PyLate and Stanford ColBERT checkpoints when it loads them."""
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from transformers import AutoModel

    out_dir = Path(out_dir)
    hf_dir = out_dir.parent / f"{out_dir.name}-hf"
    tok = build_tokenizer(arch)
    torch.manual_seed(seed)
    model = AutoModel.from_config(build_config(arch, len(tok), tok.pad_token_id))
    model.save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    modules = [
        Transformer(
            str(hf_dir),
            max_seq_length=max_seq_length,
            query_length=query_length,
            document_length=document_length,
            query_expansion=query_expansion,
        ),
        Dense(HIDDEN, dim, bias=False, activation_function=None, module_input_name="token_embeddings"),
    ]
    keep = tok.convert_tokens_to_ids(keep_only_tokens) if keep_only_tokens else None
    mask = MultiVectorMask(skiplist_words=skiplist_words, keep_only_token_ids=keep)
    if mask_before_normalize:
        modules.append(mask)
    if normalize:
        modules.append(Normalize(module_input_name="token_embeddings"))
    if not mask_before_normalize:
        modules.append(mask)
    mve = MultiVectorEncoder(modules=modules, device="cpu", prompts=prompts)
    mve.save(str(out_dir))
    return out_dir

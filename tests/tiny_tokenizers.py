"""Tiny real tokenizers of each kind in the architecture table, trained on a few hundred texts.

Each is built through the architecture's own ``*TokenizerFast`` class from the files a
real checkpoint ships (vocab.txt; vocab.json + merges.txt; spiece.model), so the
``tokenizer.json`` it saves is what Hugging Face's converters make of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_runtime_tokenizer import TEXTS

from export.architectures import TokenizerKind, arch_for

_BPE_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # roberta-base's ids 0-4


def tiny_tokenizer(model_type: str, directory: Path) -> Any:
    """Trains a tokenizer of ``model_type``'s kind, saves it in ``directory`` and returns it.

    The vocabulary holds 250-400 tokens; size the model with ``len(tokenizer)``.
    """
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES, tokenizer_class_from_name

    cls = tokenizer_class_from_name(TOKENIZER_MAPPING_NAMES[model_type][1])
    directory.mkdir(parents=True, exist_ok=True)
    kind = arch_for(model_type).tokenizer
    if kind is TokenizerKind.WORDPIECE:
        tok = cls(vocab_file=str(_wordpiece_vocab(directory)), do_lower_case=True)
    elif kind is TokenizerKind.BPE:
        tok = cls(*(str(p) for p in _bpe_files(directory)))
    else:
        tok = cls(vocab_file=str(_sentencepiece_model(directory)))
    tok.save_pretrained(directory)
    return tok


def _wordpiece_vocab(directory: Path) -> Path:
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(TEXTS, vocab_size=300, show_progress=False)
    return Path(tok.save_model(str(directory))[0])


def _bpe_files(directory: Path) -> tuple[Path, Path]:
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(TEXTS, vocab_size=400, special_tokens=_BPE_SPECIALS, show_progress=False)
    vocab, merges = tok.save_model(str(directory))
    return Path(vocab), Path(merges)


def _sentencepiece_model(directory: Path) -> Path:
    import sentencepiece as spm

    prefix = directory / "spiece"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS),
        model_prefix=str(prefix),
        model_type="unigram",
        vocab_size=300,
        hard_vocab_limit=False,  # the corpus is small; take what it yields
        character_coverage=1.0,
        # albert-base-v2's layout: <pad>=0, <unk>=1, [CLS]=2, [SEP]=3, [MASK]=4.
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        pad_piece="<pad>",
        unk_piece="<unk>",
        bos_piece="[CLS]",
        eos_piece="[SEP]",
        user_defined_symbols=["[MASK]"],
        minloglevel=2,
    )
    return prefix.with_suffix(".model")

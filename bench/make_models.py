"""Makes random-weight models with the exact shapes of google/flan-t5-small and -base (weights cannot
be downloaded here, and random weights are as good for speed) in target/bench/models/, each also
converted to CTranslate2's format (float32) in its ctranslate2/ subfolder. What exists is kept.

    python bench/make_models.py [--tokenizer ../shared/data/t5-tokenizer/tokenizer.json]
"""

import argparse
import shutil
from pathlib import Path

import ctranslate2
import torch
from transformers import T5Config, T5ForConditionalGeneration

SHAPES = {
    "flan-t5-small": dict(d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6),
    "flan-t5-base": dict(d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12),
}


def main():
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default=str(root.parent / "shared/data/t5-tokenizer/tokenizer.json"))
    parser.add_argument("--out", default=str(root / "target/bench/models"))
    args = parser.parse_args()
    for name, shape in SHAPES.items():
        folder = Path(args.out) / name
        if not (folder / "model.safetensors").exists():
            make_model(name, shape, folder, args.tokenizer)
        converted = folder / "ctranslate2"
        if not converted.exists():
            # Written beside it and renamed when whole, so that a conversion cut short is redone.
            partial = folder / "ctranslate2.partial"
            ctranslate2.converters.TransformersConverter(str(folder)).convert(str(partial), force=True)
            partial.rename(converted)


def make_model(name, shape, folder, tokenizer):
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=32128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **shape,
    )
    config.architectures = ["T5ForConditionalGeneration"]
    model = T5ForConditionalGeneration(config)
    print(name, sum(p.numel() for p in model.parameters()), "parameters")
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "generation_config.json").unlink(missing_ok=True)
    shutil.copy(tokenizer, folder / "tokenizer.json")


if __name__ == "__main__":
    main()

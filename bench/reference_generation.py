"""The references for the generation benchmark: greedy, exactly 64 new tokens, a batch of the first
DialogSum dialogues, sources cut at 512 tokens, 2 threads, on one backend:

    torch-f32, torch-bf16   PyTorch + transformers, the model in float32 or loaded in bfloat16
    ct2-f32, ct2-int8       CTranslate2 on the model's ctranslate2/ conversion (bench/make_models.py),
                            computing in float32 or with int8 weights

CTranslate2 gets the same source token ids as PyTorch, the trailing </s> included, from the same
tokenizer.json (through `tokenizers`: transformers would load torch into the process and into its
peak memory). Prints `median_seconds peak_rss_bytes`: the median of 3 runs after a warm-up, and the
peak resident memory of the whole process, from /proc. The Rust benchmark runs it between its own
measurements so that both see the same machine load.

    python bench/reference_generation.py MODELS_DIR DIALOGSUM_JSONL MODEL_NAME BATCH BACKEND
"""

import json
import statistics
import sys
import time
from pathlib import Path

PROMPT = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "
NEW_TOKENS = 64
MAX_SOURCE_TOKENS = 512
THREADS = 2


def peak_rss_bytes():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def torch_generation(folder, prompts, dtype):
    """A greedy generation with PyTorch, `run()` returning each row's new token ids."""
    import torch
    from transformers import PreTrainedTokenizerFast, T5ForConditionalGeneration

    torch.set_num_threads(THREADS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>", eos_token="</s>")
    model = T5ForConditionalGeneration.from_pretrained(folder, torch_dtype=getattr(torch, dtype)).eval()
    inputs = tokenizer(prompts, max_length=MAX_SOURCE_TOKENS, truncation=True, padding=True, return_tensors="pt",
                       return_token_type_ids=False)

    def run():
        with torch.inference_mode():
            output = model.generate(**inputs, do_sample=False, num_beams=1, min_new_tokens=NEW_TOKENS,
                                    max_new_tokens=NEW_TOKENS)
        return output[:, 1:].tolist()  # without the decoder's start token

    return run


def ctranslate2_generation(folder, prompts, compute_type):
    """A greedy generation with CTranslate2, `run()` returning each row's new token ids."""
    import ctranslate2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_SOURCE_TOKENS)
    # Tokens named by id: an unknown character's token is its own text, which CTranslate2 would
    # look up again.
    source = [[tokenizer.id_to_token(i) for i in encoding.ids] for encoding in tokenizer.encode_batch(prompts)]
    translator = ctranslate2.Translator(str(folder / "ctranslate2"), device="cpu", compute_type=compute_type,
                                        intra_threads=THREADS, inter_threads=1)

    def run():
        # The decoding lengths count the tokens after the start token, and below the minimum the
        # end cannot be chosen (as with PyTorch's min_new_tokens): exactly NEW_TOKENS. The sources
        # are cut already.
        results = translator.translate_batch(source, beam_size=1, min_decoding_length=NEW_TOKENS,
                                             max_decoding_length=NEW_TOKENS, max_input_length=0)
        return [[tokenizer.token_to_id(token) for token in r.hypotheses[0]] for r in results]

    return run


BACKENDS = {
    "torch-f32": (torch_generation, "float32"),
    "torch-bf16": (torch_generation, "bfloat16"),
    "ct2-f32": (ctranslate2_generation, "float32"),
    "ct2-int8": (ctranslate2_generation, "int8"),
}


def main():
    models, data, name, batch, backend = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    dialogues = [json.loads(line)["dialogue"] for line in data.read_text().splitlines()[:batch]]
    make, number_type = BACKENDS[backend]
    run = make(models / name, [PROMPT.format(dialogue=d) for d in dialogues], number_type)
    generated = run()
    assert all(len(tokens) == NEW_TOKENS for tokens in generated), [len(tokens) for tokens in generated]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    print(statistics.median(times), peak_rss_bytes())


if __name__ == "__main__":
    main()

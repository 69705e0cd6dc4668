"""PyTorch + transformers reference for the generation benchmark: greedy, exactly 64 new tokens,
a batch of the first DialogSum dialogues, 2 threads; prints the median of 3 runs after a warm-up,
in seconds. The Rust benchmark runs it between its own measurements so that both see the same
machine load.

    python bench/reference_generation.py MODELS_DIR DIALOGSUM_JSONL MODEL_NAME BATCH
"""

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, T5ForConditionalGeneration

PROMPT = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "


def main():
    models, data, name, batch = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(2)
    dialogues = [json.loads(line)["dialogue"] for line in data.read_text().splitlines()[:batch]]
    folder = models / name
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>", eos_token="</s>")
    model = T5ForConditionalGeneration.from_pretrained(folder).eval()
    inputs = tokenizer([PROMPT.format(dialogue=d) for d in dialogues], max_length=512, truncation=True,
                       padding=True, return_tensors="pt", return_token_type_ids=False)

    def run():
        with torch.inference_mode():
            model.generate(**inputs, do_sample=False, num_beams=1, min_new_tokens=64, max_new_tokens=64)

    run()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    print(statistics.median(times))


if __name__ == "__main__":
    main()

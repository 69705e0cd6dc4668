"""PyTorch + transformers reference for the generation benchmark: greedy, exactly 64 new tokens,
batch 1 and 8 of the first DialogSum dialogues, 2 threads, median of 3 runs after a warm-up.

    python bench/reference_generation.py MODELS_DIR DIALOGSUM_JSONL OUT_JSON
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
    models, data, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(2)
    dialogues = [json.loads(line)["dialogue"] for line in data.read_text().splitlines()[:8]]
    results = {}
    for name in ["flan-t5-small", "flan-t5-base"]:
        folder = models / name
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>", eos_token="</s>")
        model = T5ForConditionalGeneration.from_pretrained(folder).eval()
        results[name] = {}
        for batch in [1, 8]:
            inputs = tokenizer([PROMPT.format(dialogue=d) for d in dialogues[:batch]], max_length=512,
                               truncation=True, padding=True, return_tensors="pt", return_token_type_ids=False)
            def run():
                with torch.inference_mode():
                    model.generate(**inputs, do_sample=False, num_beams=1, min_new_tokens=64, max_new_tokens=64)
            run()
            times = []
            for _ in range(3):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            results[name][str(batch)] = statistics.median(times)
            print(name, batch, f"{results[name][str(batch)]:.2f} s", flush=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

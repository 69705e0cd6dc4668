"""PyTorch + PEFT reference for the training benchmark: LoRA r=32, alpha 32, dropout 0.05 on q and v,
AdamW, the model in train mode (its dropout on), batches of the first DialogSum dialogues padded to
their longest, labels padded with -100, 2 threads. PRECISION is f32, or bf16: the model loaded in
bfloat16, the adapter kept in float32 (PEFT's autocast_adapter_dtype) and the forward pass and loss
under CPU autocast to bfloat16. Runs one warm-up step and three timed ones and prints
`seconds_per_step tokens_per_step peak_rss_bytes` (the median step; tokens are the real source and
target tokens; the peak resident memory of the whole process, from /proc).

    python bench/reference_training.py MODELS_DIR DIALOGSUM_JSONL MODEL_NAME BATCH PRECISION
"""

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import PreTrainedTokenizerFast, T5ForConditionalGeneration

PROMPT = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "


def peak_rss_bytes():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main():
    models, data, name, batch, precision = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    bf16 = {"f32": False, "bf16": True}[precision]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    rows = [json.loads(line) for line in data.read_text().splitlines()[:batch]]
    folder = models / name
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>", eos_token="</s>")
    inputs = tokenizer([PROMPT.format(dialogue=r["dialogue"]) for r in rows], max_length=512, truncation=True,
                       padding=True, return_tensors="pt", return_token_type_ids=False)
    labels = tokenizer([r["summary"] for r in rows], max_length=128, truncation=True, padding=True,
                       return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    tokens = int(inputs["attention_mask"].sum()) + int((labels != -100).sum())
    model = T5ForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.bfloat16 if bf16 else torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="SEQ_2_SEQ_LM", r=32, lora_alpha=32, lora_dropout=0.05,
                                             target_modules=["q", "v"]))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs, labels=labels).loss
        assert torch.isfinite(loss), loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad()

    step()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(statistics.median(times), tokens, peak_rss_bytes())


if __name__ == "__main__":
    main()

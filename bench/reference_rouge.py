"""rouge-score's time to score the DialogSum test summaries against each other (summary1 against
summary2, summary2 against summary3, summary3 against summary1), four ROUGE types, stemmer on.
Prints the median of 3 runs in seconds.

    python bench/reference_rouge.py DIALOGSUM_TEST_JSONL
"""

import json
import statistics
import sys
import time

from rouge_score import rouge_scorer


def main():
    rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
    pairs = [(r[a], r[b]) for r in rows for a, b in [("summary1", "summary2"), ("summary2", "summary3"), ("summary3", "summary1")]]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for prediction, reference in pairs:
            scorer.score(reference, prediction)
        times.append(time.perf_counter() - start)
    print(statistics.median(times))


if __name__ == "__main__":
    main()

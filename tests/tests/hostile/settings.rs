//! Settings: zero, negative, NaN, infinite and absurdly large values for every number a command
//! takes. Each is refused before any work (exit 1 naming the setting, or 2 where the parser
//! cannot read it), or, where it is only larger than the work needs, the work is done within
//! the memory it needs.

use super::*;

/// `dialora train` of the clean training data with `settings`, without --max-steps unless
/// given; asserts that the output folder is never created when refused.
fn train(settings: &[&str]) -> (Run, bool) {
    let work = workspace();
    let data = clean_training_data(work.path());
    let output = work.path().join("adapter");
    let mut command = dialora_in(work.path());
    command
        .args(["train", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--train")
        .arg(&data)
        .arg("--output")
        .arg(&output)
        .args(settings);
    let run = run_measured(&mut command);
    (run, output.exists())
}

fn train_refuses(settings: &[&str], setting: &str) {
    let (run, created) = train(settings);
    refused(run, &[setting]);
    assert!(!created, "a refused setting created the output folder");
}

fn train_succeeds(settings: &[&str]) {
    let (run, created) = train(settings);
    succeeded(run);
    assert!(created);
}

/// `dialora summarize` of the fixture inputs with `settings`.
fn summarize(settings: &[&str]) -> (Run, bool) {
    let work = workspace();
    let output = work.path().join("summaries.jsonl");
    let mut command = dialora_in(work.path());
    command
        .args(["summarize", "--model"])
        .arg(fixtures().join("t5-gated"))
        .arg("--input")
        .arg(fixtures().join("inputs.jsonl"))
        .arg("--output")
        .arg(&output)
        .args(settings);
    let run = run_measured(&mut command);
    (run, output.exists())
}

fn summarize_refuses(settings: &[&str], setting: &str) {
    let (run, written) = summarize(settings);
    refused(run, &[setting]);
    assert!(!written);
}

fn summarize_succeeds(settings: &[&str]) {
    let (run, written) = summarize(settings);
    succeeded(run);
    assert!(written);
}

/// A negative count, which the parser may refuse as a usage error: either way the setting is
/// named.
fn refused_or_usage_error(run: Run, setting: &str) {
    if run.code == 2 {
        usage_error(run, setting);
    } else {
        refused(run, &[setting]);
    }
}

const TWO_STEPS: [&str; 4] = ["--batch-size", "2", "--max-steps", "2"];
const LARGEST: &str = "18446744073709551615";

/// `settings` after the two-step defaults.
fn two_steps_and<'a>(settings: &[&'a str]) -> Vec<&'a str> {
    TWO_STEPS
        .iter()
        .copied()
        .chain(settings.iter().copied())
        .collect()
}

#[test]
fn a_rank_of_a_billion_is_refused_before_allocating() {
    train_refuses(&two_steps_and(&["--rank", "1000000000"]), "--rank");
}

#[test]
fn a_rank_of_zero() {
    train_refuses(&two_steps_and(&["--rank", "0"]), "--rank");
}

#[test]
fn the_largest_rank() {
    train_refuses(&two_steps_and(&["--rank", LARGEST]), "--rank");
}

#[test]
fn an_alpha_of_zero() {
    train_refuses(&two_steps_and(&["--alpha", "0"]), "--alpha");
}

#[test]
fn an_alpha_that_is_not_a_number() {
    train_refuses(&two_steps_and(&["--alpha", "NaN"]), "--alpha");
}

#[test]
fn a_negative_alpha_is_a_value_not_an_unknown_argument() {
    train_refuses(&two_steps_and(&["--alpha", "-8"]), "--alpha");
}

#[test]
fn a_dropout_of_one() {
    train_refuses(&two_steps_and(&["--dropout", "1"]), "--dropout");
}

#[test]
fn a_dropout_that_is_not_a_number() {
    train_refuses(&two_steps_and(&["--dropout", "NaN"]), "--dropout");
}

#[test]
fn a_negative_dropout() {
    train_refuses(&two_steps_and(&["--dropout", "-0.1"]), "--dropout");
}

#[test]
fn a_negative_learning_rate_is_a_value_not_an_unknown_argument() {
    train_refuses(
        &two_steps_and(&["--learning-rate", "-1"]),
        "--learning-rate",
    );
}

#[test]
fn a_learning_rate_of_zero() {
    train_refuses(&two_steps_and(&["--learning-rate", "0"]), "--learning-rate");
}

#[test]
fn a_learning_rate_that_is_not_a_number() {
    train_refuses(
        &two_steps_and(&["--learning-rate", "NaN"]),
        "--learning-rate",
    );
}

#[test]
fn an_infinite_learning_rate() {
    train_refuses(
        &two_steps_and(&["--learning-rate", "inf"]),
        "--learning-rate",
    );
}

#[test]
fn a_negative_weight_decay() {
    train_refuses(&two_steps_and(&["--weight-decay", "-1"]), "--weight-decay");
}

#[test]
fn a_training_batch_of_zero() {
    train_refuses(&["--batch-size", "0", "--max-steps", "2"], "--batch-size");
}

#[test]
fn the_largest_training_batch() {
    train_refuses(
        &["--batch-size", LARGEST, "--max-steps", "2"],
        "--batch-size",
    );
}

#[test]
fn a_negative_training_batch() {
    let (run, created) = train(&["--batch-size", "-1", "--max-steps", "2"]);
    refused_or_usage_error(run, "--batch-size");
    assert!(!created);
}

#[test]
fn no_gradient_accumulation() {
    train_refuses(
        &two_steps_and(&["--gradient-accumulation", "0"]),
        "--gradient-accumulation",
    );
}

#[test]
fn the_largest_gradient_accumulation_does_not_overflow() {
    train_refuses(
        &two_steps_and(&["--gradient-accumulation", LARGEST]),
        "--gradient-accumulation",
    );
}

#[test]
fn no_epochs() {
    train_refuses(&["--batch-size", "2", "--epochs", "0"], "--epochs");
}

#[test]
fn the_largest_epoch_count_does_not_overflow() {
    train_refuses(&["--batch-size", "2", "--epochs", LARGEST], "--epochs");
}

#[test]
fn a_billion_epochs_capped_by_max_steps_is_fine() {
    train_succeeds(&two_steps_and(&["--epochs", "1000000000"]));
}

#[test]
fn no_steps() {
    train_refuses(&["--batch-size", "2", "--max-steps", "0"], "--max-steps");
}

#[test]
fn a_negative_gradient_clip() {
    train_refuses(
        &two_steps_and(&["--max-grad-norm", "-1"]),
        "--max-grad-norm",
    );
}

#[test]
fn a_gradient_clip_that_is_not_a_number() {
    train_refuses(
        &two_steps_and(&["--max-grad-norm", "NaN"]),
        "--max-grad-norm",
    );
}

#[test]
fn a_training_source_length_of_zero() {
    train_refuses(
        &two_steps_and(&["--max-source-length", "0"]),
        "--max-source-length",
    );
}

#[test]
fn a_training_target_length_of_zero() {
    train_refuses(
        &two_steps_and(&["--max-target-length", "0"]),
        "--max-target-length",
    );
}

#[test]
fn the_largest_training_source_length_takes_only_what_the_data_needs() {
    train_succeeds(&two_steps_and(&["--max-source-length", LARGEST]));
}

#[test]
fn no_targets() {
    train_refuses(&two_steps_and(&["--targets", ""]), "--targets");
}

#[test]
fn evaluating_every_zero_steps() {
    train_refuses(&two_steps_and(&["--eval-every", "0"]), "--eval-every");
}

#[test]
fn a_checkpoint_every_zero_steps() {
    train_refuses(
        &two_steps_and(&["--checkpoint-every", "0"]),
        "--checkpoint-every",
    );
}

#[test]
fn a_model_dropout_above_one() {
    train_refuses(
        &two_steps_and(&["--model-dropout", "1.5"]),
        "--model-dropout",
    );
}

#[test]
fn a_negative_seed() {
    let (run, created) = train(&two_steps_and(&["--seed", "-1"]));
    refused_or_usage_error(run, "--seed");
    assert!(!created);
}

#[test]
fn an_unknown_learning_rate_schedule() {
    let (run, created) = train(&two_steps_and(&["--lr-schedule", "exponential"]));
    usage_error(run, "--lr-schedule");
    assert!(!created);
}

#[test]
fn a_training_prompt_without_the_dialogue() {
    train_refuses(
        &two_steps_and(&["--prompt-template", "Summarize this."]),
        "--prompt-template",
    );
}

#[test]
fn no_beams() {
    summarize_refuses(&["--num-beams", "0"], "--num-beams");
}

#[test]
fn a_hundred_thousand_beams_are_refused_before_allocating() {
    summarize_refuses(&["--num-beams", "100000"], "--num-beams");
}

#[test]
fn the_largest_beam_count() {
    summarize_refuses(&["--num-beams", LARGEST], "--num-beams");
}

#[test]
fn a_beam_count_that_is_a_word() {
    let (run, written) = summarize(&["--num-beams", "many"]);
    usage_error(run, "--num-beams");
    assert!(!written);
}

#[test]
fn a_summarizing_batch_of_zero() {
    summarize_refuses(&["--batch-size", "0"], "--batch-size");
}

#[test]
fn the_largest_summarizing_batch_takes_only_the_dialogues_there_are() {
    summarize_succeeds(&["--batch-size", LARGEST, "--max-new-tokens", "4"]);
}

#[test]
fn a_summarizing_source_length_of_zero() {
    summarize_refuses(&["--max-source-length", "0"], "--max-source-length");
}

#[test]
fn a_summarizing_source_length_of_one() {
    summarize_refuses(&["--max-source-length", "1"], "--max-source-length");
}

#[test]
fn the_largest_summarizing_source_length_takes_only_what_the_dialogues_need() {
    summarize_succeeds(&["--max-source-length", LARGEST, "--max-new-tokens", "4"]);
}

#[test]
fn no_new_tokens() {
    summarize_refuses(&["--max-new-tokens", "0"], "--max-new-tokens");
}

#[test]
fn more_tokens_required_than_allowed() {
    summarize_refuses(
        &["--min-new-tokens", "50", "--max-new-tokens", "8"],
        "--min-new-tokens",
    );
}

#[test]
fn a_billion_tokens_required_is_refused_before_allocating() {
    // Summaries that may not end before 10^9 tokens: no machine holds what that needs.
    summarize_refuses(
        &[
            "--min-new-tokens",
            "1000000000",
            "--max-new-tokens",
            "1000000000",
        ],
        "--max-new-tokens",
    );
}

#[test]
fn a_length_penalty_that_is_not_a_number() {
    summarize_refuses(&["--length-penalty", "NaN"], "--length-penalty");
}

#[test]
fn an_infinite_length_penalty() {
    summarize_refuses(&["--length-penalty", "inf"], "--length-penalty");
}

#[test]
fn the_largest_no_repeat_size_is_fine() {
    summarize_succeeds(&["--no-repeat-ngram-size", LARGEST, "--max-new-tokens", "4"]);
}

#[test]
fn a_summarizing_prompt_without_the_dialogue() {
    summarize_refuses(&["--prompt-template", "Summarize."], "--prompt-template");
}

#[test]
fn an_unknown_summary_style() {
    summarize_refuses(&["--style", "haiku"], "--style");
}

#[test]
fn a_device_this_build_cannot_use() {
    // Metal is macOS's; these tests run on Linux.
    summarize_refuses(&["--device", "metal"], "--device");
}

/// `dialora eval` of the fixture data with `settings`.
fn eval_refuses(settings: &[&str], setting: &str) {
    let work = workspace();
    let report = work.path().join("report");
    let run = run_measured(
        dialora_in(work.path())
            .args(["eval", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--data")
            .arg(fixtures().join("data/dialogsum.jsonl"))
            .arg("--output")
            .arg(&report)
            .args(settings),
    );
    refused(run, &[setting]);
    assert!(!report.exists());
}

#[test]
fn evaluating_no_dialogues() {
    eval_refuses(&["--limit", "0"], "--limit");
}

#[test]
fn evaluating_with_a_hundred_thousand_beams() {
    eval_refuses(&["--num-beams", "100000"], "--num-beams");
}

/// `dialora data convert` with a split of `fraction`.
fn split_refuses(fraction: &str) {
    let work = workspace();
    let run = run_measured(
        dialora_in(work.path())
            .args(["data", "convert"])
            .arg(fixtures().join("data/dialogsum.jsonl"))
            .arg(fixtures().join("data/chats.csv"))
            .arg("--output")
            .arg(work.path().join("train.jsonl"))
            .args(["--validation-fraction", fraction, "--validation-output"])
            .arg(work.path().join("validation.jsonl")),
    );
    refused(run, &["--validation-fraction"]);
    assert!(!work.path().join("train.jsonl").exists());
    assert!(!work.path().join("validation.jsonl").exists());
}

#[test]
fn a_split_of_nothing() {
    split_refuses("0");
}

#[test]
fn a_split_of_everything() {
    split_refuses("1");
}

#[test]
fn a_split_that_is_not_a_number() {
    split_refuses("NaN");
}

#[test]
fn a_negative_split_is_a_value_not_an_unknown_argument() {
    split_refuses("-0.5");
}

#[test]
fn measuring_data_against_a_window_of_zero() {
    let work = workspace();
    let run = run_measured(
        dialora_in(work.path())
            .args(["data", "check"])
            .arg(fixtures().join("data/chats.csv"))
            .arg("--model")
            .arg(fixtures().join("t5-gated"))
            .args(["--max-source-length", "0"]),
    );
    refused(run, &["--max-source-length"]);
}

#[test]
fn drafting_with_no_beams() {
    let work = workspace();
    let drafts = work.path().join("drafts.jsonl");
    let run = run_measured(
        dialora_in(work.path())
            .args(["data", "draft"])
            .arg(fixtures().join("data/standup.txt"))
            .arg("--model")
            .arg(fixtures().join("t5-gated"))
            .arg("--output")
            .arg(&drafts)
            .args(["--num-beams", "0"]),
    );
    refused(run, &["--num-beams"]);
    assert!(!drafts.exists());
}

#[test]
fn an_unknown_kernel_level_is_refused_naming_dialora_cpu() {
    let work = workspace();
    let output = work.path().join("summaries.jsonl");
    for level in ["sse9", "AVX512 ", "neon-ish"] {
        let mut command = dialora_in(work.path());
        command
            .env("DIALORA_CPU", level)
            .args(["summarize", "--model"])
            .arg(fixtures().join("t5-gated"))
            .arg("--input")
            .arg(fixtures().join("inputs.jsonl"))
            .arg("--output")
            .arg(&output);
        refused(run_measured(&mut command), &["DIALORA_CPU"]);
        assert!(!output.exists());
    }
}

#[test]
fn full_fine_tuning_in_bf16_and_unknown_precisions_are_refused_naming_precision() {
    train_refuses(
        &["--full", "--precision", "bf16", "--max-steps", "1"],
        "--precision",
    );
    for precision in ["f16", "BF16 ", "int4", ""] {
        let (run, written) = summarize(&["--precision", precision]);
        usage_error(run, "--precision");
        assert!(!written);
    }
}

//! Training: LoRA (or full fine-tuning) of a T5 on dialogues with their summaries, the way PEFT and
//! transformers' Trainer do it: batches of examples without padding, the loss averaged over the
//! real target tokens of an optimizer step (across gradient accumulation), AdamW, clipping,
//! warm-up and decay, dropout, seeded shuffling per epoch; a JSON-able event per step; checkpoints
//! that a resumed run continues exactly; and the trained adapter or model written atomically.

mod checkpoint;
pub mod optimizer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::adapter;
use crate::data::Dialogue;
use crate::error::{Error, Result, Sentence};
use crate::lora::{Adapter, LoraConfig, TargetModules};
use crate::model::t5::{Dropout, Gradients, Pair, T5, Trained};
use crate::model::{LoadedModel, ModelFiles, Precision};
use crate::rng::SplitMix64;
use crate::task::Cancel;
use checkpoint::{Checkpoint, Progress};
pub use checkpoint::{exists as has_checkpoint, stopped_at};
use dialora_settings::{Refusal, Setting};
pub use dialora_settings::{Schedule, TrainSettings};
use optimizer::{AdamW, clip_factor};

/// The most steps one run takes: a billion, which no run of a day reaches, so that a number typed
/// by mistake is refused rather than run for ever.
const MAX_STEPS: usize = 1_000_000_000;

/// A data set as the trainer takes it: where it came from (for messages and the adapter's card) and
/// its dialogues.
pub struct TrainData {
    pub source: PathBuf,
    pub dialogues: Vec<Dialogue>,
}

/// What to train and where to put it.
pub struct TrainRequest<'a> {
    pub model: &'a mut LoadedModel,
    pub model_files: &'a ModelFiles,
    pub train: &'a TrainData,
    pub validation: Option<&'a TrainData>,
    /// An adapter to continue training (its configuration replaces rank, alpha and targets).
    pub init_adapter: Option<PathBuf>,
    /// The adapter folder (or, with `full`, the model folder) to write.
    pub output: PathBuf,
    pub resume: bool,
    /// Replace what `output` holds instead of refusing.
    pub overwrite: bool,
    pub settings: TrainSettings,
}

/// One optimizer step, as the log and the app's loss plot receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based.
    pub step: usize,
    /// Mean token cross-entropy of the step's examples.
    pub loss: f64,
    pub learning_rate: f64,
    /// Source and target tokens of this step.
    pub tokens: usize,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
    pub eta_s: f64,
    /// Epochs done, fractional.
    pub epoch: f64,
    pub grad_norm: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
}

/// What a run reports while it works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    Started {
        /// The step the run starts from (0, or the checkpoint's when resuming).
        first_step: usize,
        total_steps: usize,
        examples: usize,
        trainable_parameters: usize,
    },
    Warning {
        message: Sentence,
    },
    Step(StepRecord),
    Checkpoint {
        step: usize,
    },
}

/// How a finished run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainSummary {
    pub steps: usize,
    pub train_loss: f64,
    pub validation_loss: Option<f64>,
    pub output: PathBuf,
}

/// A tokenized data set.
struct Examples {
    pairs: Vec<Pair>,
    truncated_sources: usize,
    truncated_targets: usize,
    /// Dialogues left out because their summary is an unreviewed draft.
    drafts: usize,
}

fn tokenize(model: &LoadedModel, data: &TrainData, settings: &TrainSettings) -> Result<Examples> {
    let mut pairs = Vec::with_capacity(data.dialogues.len());
    let (mut truncated_sources, mut truncated_targets, mut drafts) = (0, 0, 0);
    for dialogue in &data.dialogues {
        let Some(summary) = dialogue.summaries.first() else {
            continue;
        };
        if dialogue.draft && !settings.include_drafts {
            drafts += 1;
            continue;
        }
        let prompt = settings
            .prompt_template
            .replace("{dialogue}", &dialogue.dialogue);
        let source = model
            .tokenizer
            .encode(&prompt, settings.max_source_length)?;
        let target = model
            .tokenizer
            .encode(summary, settings.max_target_length)?;
        truncated_sources += usize::from(source.truncated);
        truncated_targets += usize::from(target.truncated);
        if target.ids.is_empty() {
            continue;
        }
        pairs.push(Pair {
            source: source.ids,
            target: target.ids,
        });
    }
    if pairs.is_empty() && drafts > 0 {
        return Err(Error::invalid(
            &data.source,
            Sentence::from(format!(
                "all {drafts} summaries are unreviewed drafts (\"draft\": true): "
            ))
            .remedy(Setting::IncludeDrafts),
        ));
    }
    if pairs.is_empty() {
        return Err(Error::invalid(
            &data.source,
            "no dialogue has a summary: training needs a \"summary\" for each dialogue",
        ));
    }
    Ok(Examples {
        pairs,
        truncated_sources,
        truncated_targets,
        drafts,
    })
}

/// About how many bytes a run takes: the model's weights (f32 or bf16), four f32 copies of what
/// is trained (weights, gradients, AdamW's moments), and each example's activations kept for the
/// backward pass (every layer's hidden states, attention scores and feed-forward values).
pub fn memory_needed(t5: &T5, settings: &TrainSettings, examples: usize) -> f64 {
    let c = t5.config();
    let shapes = t5.linear_shapes();
    let parameters: f64 = shapes
        .iter()
        .map(|(_, out, input)| (out * input) as f64)
        .sum::<f64>()
        + (c.vocab_size * c.d_model) as f64;
    // A LoRA layer is rank x (in + out); --rank 1000000000 must be refused here, not allocated.
    let trainable = if settings.full {
        parameters
    } else {
        shapes
            .iter()
            .filter(|(name, _, _)| {
                let last = name.rsplit('.').next().unwrap_or(name);
                settings.targets.iter().any(|t| t == last)
            })
            .map(|(_, out, input)| (out + input) as f64 * settings.rank as f64)
            .sum()
    };
    let batch = settings.batch_size.min(examples.max(1));
    let tokens = (settings.max_source_length + settings.max_target_length) as f64;
    let layers = (c.num_layers + c.decoder_layers()) as f64;
    let per_token = layers * (6.0 * c.d_model as f64 + 3.0 * c.d_ff as f64)
        + 2.0 * layers * c.num_heads as f64 * tokens
        + 2.0 * c.vocab_size as f64;
    let activations = batch as f64 * tokens * per_token;
    let weight_bytes = t5.weights_dtype().size_in_bytes() as f64;
    weight_bytes * parameters + 4.0 * (4.0 * trainable + activations)
}

/// A fresh adapter as PEFT initialises one: A uniform in ±1/sqrt(in_features) (Kaiming with
/// a = sqrt(5)), B zero, so that training starts from the base model exactly.
fn new_adapter(t5: &T5, settings: &TrainSettings, base_model: &str) -> Result<Adapter> {
    let shapes = t5.linear_shapes();
    let last_names: std::collections::BTreeSet<&str> = shapes
        .iter()
        .map(|(name, _, _)| name.rsplit('.').next().unwrap_or(name))
        .collect();
    for target in &settings.targets {
        if !last_names.contains(target.as_str()) {
            return Err(Refusal::new(
                Setting::Targets,
                format!(
                    "names \"{target}\", which this model has no module of; it has {}",
                    last_names.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            )
            .into());
        }
    }
    let config = LoraConfig {
        peft_type: "LORA".into(),
        task_type: Some("SEQ_2_SEQ_LM".into()),
        base_model_name_or_path: Some(base_model.to_string()),
        r: settings.rank,
        lora_alpha: settings.alpha,
        lora_dropout: settings.lora_dropout,
        target_modules: Some(TargetModules::Names(settings.targets.clone())),
        use_rslora: settings.use_rslora,
        rank_pattern: Default::default(),
        alpha_pattern: Default::default(),
        bias: "none".into(),
        fan_in_fan_out: false,
        use_dora: false,
        modules_to_save: None,
        inference_mode: false,
    };
    let targets = config
        .target_modules
        .clone()
        .unwrap_or(TargetModules::Names(vec![]));
    let mut rng = SplitMix64::new(settings.seed ^ 0x4C6F_5241);
    let device = t5.device();
    let mut weights = Vec::new();
    for (name, out_features, in_features) in &shapes {
        if !targets.matches(name) {
            continue;
        }
        let bound = 1.0 / (*in_features as f32).sqrt();
        let a: Vec<f32> = (0..settings.rank * in_features)
            .map(|_| (rng.next_f32() * 2.0 - 1.0) * bound)
            .collect();
        weights.push((
            name.clone(),
            Tensor::from_vec(a, (settings.rank, *in_features), device)?,
            Tensor::zeros(
                (*out_features, settings.rank),
                candle_core::DType::F32,
                device,
            )?,
        ));
    }
    Adapter::new(config, weights, &shapes)
}

/// The order in which epoch `epoch` visits the examples.
fn epoch_order(count: usize, epoch: usize, settings: &TrainSettings) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if settings.shuffle {
        let seed = settings
            .seed
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(epoch as u64);
        SplitMix64::new(seed).shuffle(&mut order);
    }
    order
}

/// The mean token loss of `pairs` without dropout.
fn mean_loss(
    t5: &T5,
    pairs: &[Pair],
    adapter: Option<&Adapter>,
    batch: usize,
    cancel: &Cancel,
) -> Result<f64> {
    let (mut sum, mut tokens) = (0.0, 0usize);
    for chunk in pairs.chunks(batch) {
        cancel.check()?;
        let refs: Vec<&Pair> = chunk.iter().collect();
        let pass = t5.losses(&refs, adapter)?;
        sum += pass.loss_sum;
        tokens += pass.target_tokens;
    }
    Ok(sum / tokens.max(1) as f64)
}

/// The precision to load the model in for a run with `settings`: full fine-tuning trains every
/// weight, which stays f32; `Auto` then means f32 and an explicit bf16 is refused.
pub fn model_precision(settings: &TrainSettings, requested: Precision) -> Result<Precision> {
    match (settings.full, requested) {
        (true, Precision::Bf16) => Err(Refusal::new(
            Setting::Precision,
            "bf16 rounds the base weights, and full fine-tuning trains every one of them at full precision: leave it at auto, or train a LoRA adapter",
        )
        .into()),
        (true, _) => Ok(Precision::F32),
        (false, requested) => Ok(requested),
    }
}

/// Training tokens per second on this computer for `settings` and `model` as loaded (its
/// precision, its device): forward and backward passes, dropout included, over a batch of
/// `data`'s first examples after a warm-up pass over one. The app's estimate of a run's time comes
/// from it, so that the estimate is of the person's own machine. `on_pass(done, total)` follows
/// the passes.
pub fn measure_speed(
    model: &LoadedModel,
    data: &TrainData,
    settings: &TrainSettings,
    cancel: &Cancel,
    on_pass: &mut dyn FnMut(usize, usize),
) -> Result<f64> {
    /// Timed passes end after this many seconds, or after `MAX_PASSES`.
    const ENOUGH_SECONDS: f64 = 2.0;
    const MAX_PASSES: usize = 2;
    settings.validate()?;
    model_precision(settings, model.precision)?;
    // Drafts and dialogues without a summary are left out: a few more than a batch give one.
    let batch = settings.batch_size;
    let first = TrainData {
        source: data.source.clone(),
        dialogues: data.dialogues.iter().take(4 * batch).cloned().collect(),
    };
    let mut pairs = tokenize(model, &first, settings)?.pairs;
    pairs.truncate(batch);
    if pairs.is_empty() {
        return Err(Error::settings(format!(
            "{} has no dialogue with a reviewed summary to measure training with",
            data.source.display()
        )));
    }
    let t5 = &model.t5;
    let adapter = match settings.full {
        true => None,
        false => Some(new_adapter(t5, settings, &model.name)?),
    };
    let trained = match settings.full {
        true => Trained::Everything,
        false => Trained::Adapter,
    };
    let mut dropout = Some(Dropout {
        model_rate: settings.model_dropout.unwrap_or(t5.config().dropout_rate),
        rng: SplitMix64::new(settings.seed),
    });
    let all: Vec<&Pair> = pairs.iter().collect();
    let total = MAX_PASSES + 1;
    let mut pass = |batch: &[&Pair]| -> Result<usize> {
        cancel.check()?;
        let (pass, tape) = t5.training_forward(batch, adapter.as_ref(), &mut dropout)?;
        t5.backward(tape, adapter.as_ref(), trained, 1.0)?;
        Ok(pass.source_tokens + pass.target_tokens)
    };
    pass(&all[..1])?;
    on_pass(1, total);
    let started = Instant::now();
    let mut tokens = 0;
    for done in 1..=MAX_PASSES {
        tokens += pass(&all[..])?;
        on_pass(done + 1, total);
        if started.elapsed().as_secs_f64() >= ENOUGH_SECONDS {
            break;
        }
    }
    Ok(tokens as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Runs a training request to the end, or until `cancel` (then a checkpoint is written and
/// [`Error::Cancelled`] returned).
pub fn train(
    request: TrainRequest,
    cancel: &Cancel,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<TrainSummary> {
    let settings = &request.settings;
    settings.validate()?;
    model_precision(settings, request.model.precision)?;
    let examples = tokenize(request.model, request.train, settings)?;
    let count = examples.pairs.len();
    let source = request.train.source.display();
    if settings.batch_size > count {
        return Err(Refusal::new(
            Setting::BatchSize,
            format!(
                "{} is larger than the {count} training examples in {source}",
                settings.batch_size
            ),
        )
        .into());
    }
    if settings.examples_per_step() > count {
        return Err(Refusal::new(
            Setting::GradientAccumulation,
            format!(
                "{} with a batch size of {} makes steps of more examples than the {count} in {source}",
                settings.gradient_accumulation, settings.batch_size
            ),
        )
        .into());
    }
    let total_steps = settings.total_steps(count);
    if total_steps > MAX_STEPS {
        let setting = match settings.max_steps {
            Some(_) => Setting::MaxSteps,
            None => Setting::Epochs,
        };
        return Err(Refusal::new(
            setting,
            format!("makes {total_steps} steps; a run takes at most {MAX_STEPS}"),
        )
        .into());
    }
    let validation = match request.validation {
        Some(data) => Some(tokenize(request.model, data, settings)?.pairs),
        None => None,
    };
    let init_adapter = match &request.init_adapter {
        Some(path) if !settings.full => {
            let files = adapter::read(path, request.model.t5.device())?;
            Some(Adapter::new(
                files.config,
                files.weights,
                &request.model.t5.linear_shapes(),
            )?)
        }
        Some(_) => {
            return Err(Error::settings(
                "--init-adapter cannot be combined with --full",
            ));
        }
        None => None,
    };

    let needed = memory_needed(&request.model.t5, settings, count);
    if let Some(shortfall) = crate::runtime::memory_shortfall("training", needed) {
        // The rank is to blame when the same run at rank 1 would fit.
        let at_rank_one = TrainSettings {
            rank: 1,
            ..settings.clone()
        };
        let small_rank = memory_needed(&request.model.t5, &at_rank_one, count);
        let (setting, value, others) =
            match crate::runtime::memory_shortfall("training", small_rank) {
                None if !settings.full => (Setting::Rank, settings.rank, "a smaller batch size"),
                _ => (Setting::BatchSize, settings.batch_size, "a lower rank"),
            };
        return Err(Refusal::new(
            setting,
            format!("{value}: {shortfall}; choose a smaller one, {others} or a smaller model"),
        )
        .into());
    }
    let steps_per_epoch = settings.steps_per_epoch(count);
    let trained = if settings.full {
        Trained::Everything
    } else {
        Trained::Adapter
    };
    let t5 = &mut request.model.t5;
    let mut adapter = match (settings.full, init_adapter) {
        (true, _) => None,
        (false, Some(adapter)) => Some(adapter),
        (false, None) => Some(new_adapter(t5, settings, &request.model.name)?),
    };
    let output = &request.output;
    let output_folder =
        checkpoint::prepare_output(output, request.resume, request.overwrite, settings.full)?;
    for (count, what) in [
        (
            examples.drafts,
            Sentence::from(
                "dialogues left out: their summaries are unreviewed drafts (\"draft\": true); ",
            )
            .remedy(Setting::IncludeDrafts),
        ),
        (
            examples.truncated_sources,
            Sentence::from("dialogues were cut to ").setting(Setting::MaxSourceLength),
        ),
        (
            examples.truncated_targets,
            Sentence::from("summaries were cut to ").setting(Setting::MaxTargetLength),
        ),
    ] {
        if count > 0 {
            on_event(TrainEvent::Warning {
                message: Sentence::from(format!("{count} ")).then(what),
            });
        }
    }

    let fingerprint = checkpoint::fingerprint(
        settings,
        &request.model.name,
        &examples.pairs,
        request.init_adapter.as_deref(),
    );
    let model_dropout = settings.model_dropout.unwrap_or(t5.config().dropout_rate);
    let mut state = Checkpoint {
        progress: Progress {
            step: 0,
            elapsed_s: 0.0,
            rng: SplitMix64::new(settings.seed ^ 0x4472_6F70),
            fingerprint,
            last_loss: None,
            last_validation_loss: None,
        },
        optimizer: AdamW::new(settings.weight_decay),
    };
    if request.resume {
        state = checkpoint::restore(output, state, t5, adapter.as_mut())?;
    }
    let trainable_parameters = match &adapter {
        Some(adapter) => adapter
            .layers
            .values()
            .map(|l| l.a.elem_count() + l.b.elem_count())
            .sum(),
        None => t5.named_weights().iter().map(|(_, w)| w.elem_count()).sum(),
    };
    on_event(TrainEvent::Started {
        first_step: state.progress.step,
        total_steps,
        examples: count,
        trainable_parameters,
    });

    let started = Instant::now();
    let elapsed_before = state.progress.elapsed_s;
    let first_step = state.progress.step;
    let mut tokens_seen = 0usize;
    let mut order_epoch = usize::MAX;
    let mut order = Vec::new();
    while state.progress.step < total_steps {
        let step = state.progress.step;
        let epoch = step / steps_per_epoch;
        if epoch != order_epoch {
            order = epoch_order(count, epoch, settings);
            order_epoch = epoch;
        }
        let first = (step % steps_per_epoch) * settings.examples_per_step();
        let group: Vec<&Pair> = order[first..(first + settings.examples_per_step()).min(count)]
            .iter()
            .map(|&i| &examples.pairs[i])
            .collect();
        let group_targets: usize = group.iter().map(|p| p.target.len()).sum();

        let mut dropout = Some(Dropout {
            model_rate: model_dropout,
            rng: state.progress.rng,
        });
        let mut gradients = Gradients::default();
        let mut loss_sum = 0.0;
        let tokens_before = tokens_seen;
        for micro_batch in group.chunks(settings.batch_size) {
            if cancel.is_cancelled() {
                return Err(stop(output, &state, t5, adapter.as_ref(), on_event));
            }
            let (pass, tape) = t5.training_forward(micro_batch, adapter.as_ref(), &mut dropout)?;
            loss_sum += pass.loss_sum;
            tokens_seen += pass.source_tokens + pass.target_tokens;
            gradients.accumulate(t5.backward(
                tape,
                adapter.as_ref(),
                trained,
                1.0 / group_targets as f64,
            )?)?;
        }
        let loss = loss_sum / group_targets as f64;
        let (clip, grad_norm) = clip_factor(&gradients, settings.max_grad_norm)?;
        if !loss.is_finite() || !grad_norm.is_finite() {
            let kept = if state.progress.step > 0 && checkpoint::exists(output) {
                format!(
                    "; the last good checkpoint (step {}) is kept in {}",
                    state.progress.step,
                    output.display()
                )
            } else {
                String::new()
            };
            return Err(Error::settings(format!(
                "training diverged at step {}: the loss is {loss} (try a lower --learning-rate){kept}",
                step + 1
            )));
        }
        let learning_rate = settings.learning_rate
            * settings
                .schedule
                .factor(step, settings.warmup_steps, total_steps);
        match adapter.as_mut() {
            Some(adapter) => state
                .optimizer
                .step(&gradients, clip, learning_rate, |visit| {
                    for (name, tensor) in adapter.weights_mut() {
                        visit(&name, tensor);
                    }
                })?,
            None => state
                .optimizer
                .step(&gradients, clip, learning_rate, |visit| {
                    t5.visit_weights_mut(visit)
                })?,
        }
        if let Some(dropout) = dropout {
            state.progress.rng = dropout.rng;
        }
        state.progress.step += 1;
        state.progress.last_loss = Some(loss);

        let done = state.progress.step;
        // Cancelled during the validation pass: the step is done, so it is reported and kept,
        // and its validation is left to the resumed run.
        let mut stopping = false;
        let validation_loss = match &validation {
            Some(pairs)
                if settings.eval_every.is_some_and(|n| done.is_multiple_of(n))
                    || done == total_steps =>
            {
                match mean_loss(t5, pairs, adapter.as_ref(), settings.batch_size, cancel) {
                    Err(Error::Cancelled) => {
                        stopping = true;
                        None
                    }
                    other => {
                        let value = other?;
                        state.progress.last_validation_loss = Some(value);
                        Some(value)
                    }
                }
            }
            _ => None,
        };
        let session = started.elapsed().as_secs_f64();
        state.progress.elapsed_s = elapsed_before + session;
        let per_step = session / (done - first_step) as f64;
        on_event(TrainEvent::Step(StepRecord {
            step: done,
            loss,
            learning_rate,
            tokens: tokens_seen - tokens_before,
            tokens_per_s: tokens_seen as f64 / session.max(1e-9),
            elapsed_s: state.progress.elapsed_s,
            eta_s: per_step * (total_steps - done) as f64,
            epoch: done as f64 / steps_per_epoch as f64,
            grad_norm,
            validation_loss,
        }));
        if stopping {
            return Err(stop(output, &state, t5, adapter.as_ref(), on_event));
        }
        if settings
            .checkpoint_every
            .is_some_and(|n| done.is_multiple_of(n))
            && done < total_steps
        {
            checkpoint::save(output, &state, t5, adapter.as_ref())?;
            on_event(TrainEvent::Checkpoint { step: done });
        }
    }

    let card = Card {
        base_model: request.model.name.clone(),
        data: request.train.source.display().to_string(),
        steps: state.progress.step,
        train_loss: state.progress.last_loss,
        validation_loss: state.progress.last_validation_loss,
        rouge: None,
        prompt_template: Some(settings.prompt_template.clone()),
        precision: Some(request.model.precision),
    };
    match &adapter {
        Some(adapter) => write_adapter(adapter, &card, output)?,
        None => checkpoint::write_model(t5, request.model_files, output)?,
    }
    checkpoint::remove(output)?;
    output_folder.keep();
    Ok(TrainSummary {
        steps: state.progress.step,
        train_loss: state.progress.last_loss.unwrap_or(f64::NAN),
        validation_loss: state.progress.last_validation_loss,
        output: output.clone(),
    })
}

/// Writes a checkpoint of `state` on cancel; the error to return (the write's own, if it failed).
fn stop(
    output: &Path,
    state: &Checkpoint,
    t5: &T5,
    adapter: Option<&Adapter>,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Error {
    match checkpoint::save(output, state, t5, adapter) {
        Ok(()) => {
            on_event(TrainEvent::Checkpoint {
                step: state.progress.step,
            });
            Error::Cancelled
        }
        Err(error) => error,
    }
}

/// The short description an adapter carries for whoever receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub base_model: String,
    pub data: String,
    pub steps: usize,
    pub train_loss: Option<f64>,
    pub validation_loss: Option<f64>,
    /// ROUGE-1/2/L/Lsum when an evaluation has been recorded.
    pub rouge: Option<serde_json::Value>,
    /// The prompt the adapter was trained with; summaries with it use the same unless told
    /// otherwise.
    #[serde(default)]
    pub prompt_template: Option<String>,
    /// How the frozen base weights were stored while training (f32 or bf16).
    #[serde(default)]
    pub precision: Option<Precision>,
}

fn write_adapter(adapter: &Adapter, card: &Card, folder: &Path) -> Result<()> {
    let weights = adapter
        .layers
        .iter()
        .map(|(module, lora)| (module.as_str(), &lora.a, &lora.b));
    let card = serde_json::to_string(card).map_err(|e| Error::settings(e.to_string()))?;
    adapter::write_folder(&adapter.config, weights, Some(&card), folder)
}

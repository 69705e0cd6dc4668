//! The settings Dialora's jobs run with, one type per concept, shared by the engine (which runs
//! them), the command line (which reads them from flags) and the app (which shows them as fields):
//! training's [`TrainSettings`] with its learning-rate [`Schedule`], the reference prompt, and the
//! identity of every setting ([`Setting`]) that a refusal names, so that each front end words it in
//! its own terms (a flag on the command line, a field's label in the app).
//!
//! No dependency but serde: the app's WebAssembly build links it, and never candle.

use serde::{Deserialize, Deserializer, Serialize};

/// The prompt of the published recipe (the DialogSum notebooks): what a model is asked when no
/// style or template says otherwise.
pub const DEFAULT_PROMPT: &str = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: ";

/// A setting, by identity: what a refusal names, and each front end words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    Full,
    Rank,
    Alpha,
    LoraDropout,
    Targets,
    UseRslora,
    LearningRate,
    WeightDecay,
    BatchSize,
    GradientAccumulation,
    Epochs,
    MaxSteps,
    WarmupSteps,
    Schedule,
    MaxGradNorm,
    Seed,
    Shuffle,
    MaxSourceLength,
    MaxTargetLength,
    ModelDropout,
    PromptTemplate,
    IncludeDrafts,
    EvalEvery,
    CheckpointEvery,
    /// Which column of a table holds the dialogue (and the summary, the id).
    DialogueColumn,
    SummaryColumn,
    IdColumn,
    Precision,
}

impl Setting {
    /// The command line's flag for it.
    pub fn flag(self) -> &'static str {
        match self {
            Setting::Full => "--full",
            Setting::Rank => "--rank",
            Setting::Alpha => "--alpha",
            Setting::LoraDropout => "--dropout",
            Setting::Targets => "--targets",
            Setting::UseRslora => "--use-rslora",
            Setting::LearningRate => "--learning-rate",
            Setting::WeightDecay => "--weight-decay",
            Setting::BatchSize => "--batch-size",
            Setting::GradientAccumulation => "--gradient-accumulation",
            Setting::Epochs => "--epochs",
            Setting::MaxSteps => "--max-steps",
            Setting::WarmupSteps => "--warmup-steps",
            Setting::Schedule => "--lr-schedule",
            Setting::MaxGradNorm => "--max-grad-norm",
            Setting::Seed => "--seed",
            Setting::Shuffle => "--no-shuffle",
            Setting::MaxSourceLength => "--max-source-length",
            Setting::MaxTargetLength => "--max-target-length",
            Setting::ModelDropout => "--model-dropout",
            Setting::PromptTemplate => "--prompt-template",
            Setting::IncludeDrafts => "--include-drafts",
            Setting::EvalEvery => "--eval-every",
            Setting::CheckpointEvery => "--checkpoint-every",
            Setting::DialogueColumn => "--dialogue-column",
            Setting::SummaryColumn => "--summary-column",
            Setting::IdColumn => "--id-column",
            Setting::Precision => "--precision",
        }
    }
}

/// A setting's value that cannot be used: which setting, and what is wrong with it in words that
/// follow the setting's name ("must be at least 1", "8 is larger than the 6 examples in a.csv").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub setting: Setting,
    pub problem: String,
}

impl Refusal {
    pub fn new(setting: Setting, problem: impl Into<String>) -> Self {
        Self {
            setting,
            problem: problem.into(),
        }
    }

    /// The refusal in a front end's words.
    pub fn worded(&self, words: &dyn Words) -> String {
        format!("{} {}", words.setting(self.setting), self.problem)
    }
}

/// The command line's wording: the flag, then the problem.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.setting.flag(), self.problem)
    }
}

impl std::error::Error for Refusal {}

/// How a front end words the settings a message names.
pub trait Words {
    /// The setting's name, as it reads inside a sentence (a flag, a field's label).
    fn setting(&self, setting: Setting) -> String;
    /// A whole remedy that changes the setting ("name it with --dialogue-column").
    fn remedy(&self, setting: Setting) -> String;
}

/// The command line's words: flags.
pub struct CommandLine;

impl Words for CommandLine {
    fn setting(&self, setting: Setting) -> String {
        setting.flag().to_string()
    }

    fn remedy(&self, setting: Setting) -> String {
        match setting {
            Setting::IncludeDrafts => "review them first, or pass --include-drafts".to_string(),
            Setting::DialogueColumn | Setting::SummaryColumn | Setting::IdColumn => {
                format!("name it with {}", setting.flag())
            }
            other => format!("change {}", other.flag()),
        }
    }
}

/// One piece of a [`Sentence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// A setting's name.
    Setting(Setting),
    /// A remedy that changes the setting.
    Remedy(Setting),
}

/// A message that names settings without wording them: each front end renders it with its own
/// [`Words`]; `Display` gives the command line's. Serialized as the command line's text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sentence(Vec<Part>);

impl Sentence {
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.0.push(Part::Text(text.into()));
        self
    }

    pub fn setting(mut self, setting: Setting) -> Self {
        self.0.push(Part::Setting(setting));
        self
    }

    pub fn remedy(mut self, setting: Setting) -> Self {
        self.0.push(Part::Remedy(setting));
        self
    }

    /// This sentence followed by `rest`.
    pub fn then(mut self, rest: Sentence) -> Self {
        self.0.extend(rest.0);
        self
    }

    pub fn worded(&self, words: &dyn Words) -> String {
        self.0
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.clone(),
                Part::Setting(setting) => words.setting(*setting),
                Part::Remedy(setting) => words.remedy(*setting),
            })
            .collect()
    }
}

impl std::fmt::Display for Sentence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.worded(&CommandLine))
    }
}

impl From<String> for Sentence {
    fn from(text: String) -> Self {
        Sentence::default().text(text)
    }
}

impl From<&str> for Sentence {
    fn from(text: &str) -> Self {
        Sentence::default().text(text)
    }
}

impl Serialize for Sentence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Sentence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(String::deserialize(deserializer)?.into())
    }
}

/// How the model's frozen base weights are stored and multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 where the processor's bf16 products are faster than its f32 ones (AMX tiles), f32
    /// elsewhere.
    #[default]
    Auto,
    /// Exact: every weight in 32-bit floats, as the reference stack computes by default.
    F32,
    /// Fast: frozen weights in bfloat16 (half the memory), each product with one rounding its
    /// input to bfloat16 and summing in f32; norms, LoRA weights, optimizer state and the loss
    /// stay f32, as PEFT keeps them on a bf16 base.
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::Auto, Precision::F32, Precision::Bf16];

    /// The name `--precision` takes and reports record.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// How the learning rate changes over the run, after a linear warm-up from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Decays linearly to 0 at the last step (transformers' default).
    #[default]
    Linear,
    Constant,
    /// Half a cosine wave down to 0.
    Cosine,
}

impl Schedule {
    /// The factor of the base learning rate at optimizer step `step` (0-based) of `total`, as
    /// transformers' `LambdaLR` schedules compute it.
    pub fn factor(self, step: usize, warmup: usize, total: usize) -> f64 {
        if step < warmup {
            return step as f64 / warmup.max(1) as f64;
        }
        let remaining = total.saturating_sub(warmup).max(1) as f64;
        match self {
            Schedule::Constant => 1.0,
            Schedule::Linear => (total.saturating_sub(step) as f64 / remaining).max(0.0),
            Schedule::Cosine => {
                let progress = (step - warmup) as f64 / remaining;
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        }
    }
}

/// Everything that decides how a training run learns: what the command line's flags give, what
/// the app's Train screen shows, what a checkpoint keeps to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    /// Train every weight instead of a LoRA adapter.
    pub full: bool,
    pub rank: usize,
    pub alpha: f64,
    /// Dropout on the LoRA path.
    #[serde(alias = "dropout")]
    pub lora_dropout: f64,
    /// Module names (`q`, `v`, `wi_0`, `lm_head` ...) as PEFT's `target_modules`.
    pub targets: Vec<String>,
    pub use_rslora: bool,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub gradient_accumulation: usize,
    pub epochs: usize,
    /// Stops after this many optimizer steps (overrides `epochs`).
    pub max_steps: Option<usize>,
    pub warmup_steps: usize,
    pub schedule: Schedule,
    /// Clips the global gradient norm to this (0: no clipping).
    pub max_grad_norm: f64,
    pub seed: u64,
    pub shuffle: bool,
    pub max_source_length: usize,
    pub max_target_length: usize,
    /// The model's own dropout; `None` keeps the checkpoint's `dropout_rate`.
    pub model_dropout: Option<f64>,
    /// The prompt the adapter learns to answer; the adapter keeps it. (Settings kept by an
    /// earlier version wrote `null` for the reference prompt.)
    #[serde(deserialize_with = "prompt_or_default")]
    pub prompt_template: String,
    /// Train on summaries still marked as unreviewed drafts too (they are left out otherwise).
    pub include_drafts: bool,
    /// Validation loss every this many steps (and at the end), when there is validation data.
    pub eval_every: Option<usize>,
    /// A checkpoint every this many steps (and on cancel).
    pub checkpoint_every: Option<usize>,
}

fn prompt_or_default<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_else(|| DEFAULT_PROMPT.to_string()))
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            full: false,
            rank: 32,
            alpha: 32.0,
            lora_dropout: 0.05,
            targets: vec!["q".into(), "v".into()],
            use_rslora: false,
            learning_rate: 1e-3,
            weight_decay: 0.01,
            batch_size: 8,
            gradient_accumulation: 1,
            epochs: 1,
            max_steps: None,
            warmup_steps: 0,
            schedule: Schedule::Linear,
            max_grad_norm: 1.0,
            seed: 42,
            shuffle: true,
            max_source_length: 512,
            max_target_length: 128,
            model_dropout: None,
            prompt_template: DEFAULT_PROMPT.to_string(),
            include_drafts: false,
            eval_every: None,
            checkpoint_every: None,
        }
    }
}

impl TrainSettings {
    /// Refuses settings that cannot train, naming the setting.
    pub fn validate(&self) -> Result<(), Refusal> {
        let check = |ok: bool, setting: Setting, problem: &str| {
            if ok {
                Ok(())
            } else {
                Err(Refusal::new(setting, problem))
            }
        };
        let lora = !self.full;
        check(!lora || self.rank > 0, Setting::Rank, "must be at least 1")?;
        check(
            !lora || self.alpha > 0.0 && self.alpha.is_finite(),
            Setting::Alpha,
            "must be a positive number",
        )?;
        check(
            (0.0..1.0).contains(&self.lora_dropout),
            Setting::LoraDropout,
            "must be at least 0 and below 1",
        )?;
        check(
            self.model_dropout.is_none_or(|p| (0.0..1.0).contains(&p)),
            Setting::ModelDropout,
            "must be at least 0 and below 1",
        )?;
        check(
            !lora || !self.targets.is_empty(),
            Setting::Targets,
            "must name at least one module (q, k, v, o, wi, wi_0, wi_1, wo, lm_head)",
        )?;
        check(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            Setting::LearningRate,
            "must be a positive number",
        )?;
        check(
            self.weight_decay >= 0.0 && self.weight_decay.is_finite(),
            Setting::WeightDecay,
            "must be 0 or more",
        )?;
        check(
            self.batch_size > 0,
            Setting::BatchSize,
            "must be at least 1",
        )?;
        check(
            self.gradient_accumulation > 0,
            Setting::GradientAccumulation,
            "must be at least 1",
        )?;
        check(
            self.epochs > 0 || self.max_steps.is_some(),
            Setting::Epochs,
            "must be at least 1",
        )?;
        check(
            self.max_steps != Some(0),
            Setting::MaxSteps,
            "must be at least 1",
        )?;
        check(
            self.max_grad_norm >= 0.0 && self.max_grad_norm.is_finite(),
            Setting::MaxGradNorm,
            "must be 0 (no clipping) or more",
        )?;
        check(
            self.max_source_length >= 2,
            Setting::MaxSourceLength,
            "must be at least 2",
        )?;
        check(
            self.max_target_length >= 2,
            Setting::MaxTargetLength,
            "must be at least 2",
        )?;
        check(
            self.prompt_template.contains("{dialogue}"),
            Setting::PromptTemplate,
            "must contain {dialogue}",
        )?;
        check(
            self.eval_every != Some(0),
            Setting::EvalEvery,
            "must be at least 1",
        )?;
        check(
            self.checkpoint_every != Some(0),
            Setting::CheckpointEvery,
            "must be at least 1",
        )
    }

    /// Examples in one optimizer step: a micro-batch times the accumulation.
    pub fn examples_per_step(&self) -> usize {
        self.batch_size.saturating_mul(self.gradient_accumulation)
    }

    /// Optimizer steps in one pass over `examples`.
    pub fn steps_per_epoch(&self, examples: usize) -> usize {
        examples.div_ceil(self.examples_per_step())
    }

    /// Optimizer steps a run over `examples` takes: `max_steps`, else every epoch's.
    pub fn total_steps(&self, examples: usize) -> usize {
        self.max_steps
            .unwrap_or(self.steps_per_epoch(examples).saturating_mul(self.epochs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_transformers() {
        // get_linear_schedule_with_warmup(warmup=2, total=10)
        let linear: Vec<f64> = (0..10).map(|s| Schedule::Linear.factor(s, 2, 10)).collect();
        assert_eq!(&linear[..4], &[0.0, 0.5, 1.0, 0.875]);
        assert_eq!(linear[9], 0.125);
        assert_eq!(Schedule::Constant.factor(7, 0, 10), 1.0);
        assert!((Schedule::Cosine.factor(6, 2, 10) - 0.5).abs() < 1e-12);
        assert_eq!(Schedule::Cosine.factor(2, 2, 10), 1.0);
    }

    #[test]
    fn each_refusal_names_its_setting_and_reads_after_either_wording() {
        let zero_batch = TrainSettings {
            batch_size: 0,
            ..TrainSettings::default()
        };
        let refusal = zero_batch.validate().unwrap_err();
        assert_eq!(refusal.setting, Setting::BatchSize);
        assert_eq!(refusal.to_string(), "--batch-size must be at least 1");
        struct Labels;
        impl Words for Labels {
            fn setting(&self, _: Setting) -> String {
                "\"Dialogues per step\"".to_string()
            }
            fn remedy(&self, _: Setting) -> String {
                "accept them on the Review screen".to_string()
            }
        }
        assert_eq!(
            refusal.worded(&Labels),
            "\"Dialogues per step\" must be at least 1"
        );
        let drafts = Sentence::from("all 3 summaries are drafts: ").remedy(Setting::IncludeDrafts);
        assert_eq!(
            drafts.to_string(),
            "all 3 summaries are drafts: review them first, or pass --include-drafts"
        );
        assert_eq!(
            drafts.worded(&Labels),
            "all 3 summaries are drafts: accept them on the Review screen"
        );
        let checkpoint = TrainSettings {
            checkpoint_every: Some(0),
            ..TrainSettings::default()
        };
        assert_eq!(
            checkpoint.validate().unwrap_err().setting,
            Setting::CheckpointEvery
        );
        assert_eq!(TrainSettings::default().validate(), Ok(()));
    }

    #[test]
    fn settings_an_earlier_version_kept_still_read() {
        // The app's own settings type before it was this one: `dropout`, a null prompt.
        let kept = r#"{"rank": 8, "alpha": 16.0, "dropout": 0.1, "targets": ["q"],
            "learning_rate": 0.001, "batch_size": 4, "epochs": 2, "max_steps": null,
            "max_source_length": 256, "eval_every": 25, "prompt_template": null,
            "checkpoint_every": 25, "seed": 7}"#;
        let settings: TrainSettings = serde_json::from_str(kept).unwrap();
        assert_eq!(settings.lora_dropout, 0.1);
        assert_eq!(settings.prompt_template, DEFAULT_PROMPT);
        assert_eq!(settings.eval_every, Some(25));
        assert_eq!(
            settings.max_target_length, 128,
            "absent keys take the default"
        );
    }
}

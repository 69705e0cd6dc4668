//! Training presets in plain words, and the one-line explanation of each setting they fill in.

use dialora_settings::{Setting, Words};

use crate::protocol::TrainSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Quick,
    Balanced,
    Best,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Quick, Preset::Balanced, Preset::Best];

    pub fn label(self) -> &'static str {
        match self {
            Preset::Quick => "Quick",
            Preset::Balanced => "Balanced",
            Preset::Best => "Best quality",
        }
    }

    /// What the preset gives, in words of outcome and time.
    pub fn description(self) -> &'static str {
        match self {
            Preset::Quick => {
                "A first result in a few minutes: it picks up your kind of summary a little."
            }
            Preset::Balanced => {
                "The usual choice: learns your kind of summary well, in about the time of the estimate below."
            }
            Preset::Best => {
                "Learns the most: about three times as long as Balanced, and usually closer summaries."
            }
        }
    }

    /// The same in the terms of the method, for those who know them (the published recipe is
    /// rank 32 on q and v).
    pub fn technical(self) -> &'static str {
        match self {
            Preset::Quick => "LoRA rank 8 on q and v, at most 100 steps.",
            Preset::Balanced => {
                "The published recipe: LoRA rank 32 on q and v, learning rate 1e-3, one pass over a large data set (more over a small one)."
            }
            Preset::Best => {
                "LoRA rank 64 on q, k, v and o, learning rate 5e-4, at least three passes."
            }
        }
    }

    /// The fewest optimizer steps the preset takes, however few the dialogues: a handful of
    /// corrected summaries is gone through several times rather than once.
    fn min_steps(self) -> usize {
        match self {
            Preset::Quick => 10,
            Preset::Balanced => 30,
            Preset::Best => 60,
        }
    }

    /// The settings for `examples` training dialogues (with a summary), learning to answer
    /// `prompt_template`.
    pub fn options(self, examples: usize, prompt_template: String) -> TrainSettings {
        let recipe = TrainSettings {
            rank: 32,
            alpha: 32.0,
            lora_dropout: 0.05,
            targets: vec!["q".into(), "v".into()],
            learning_rate: 1e-3,
            batch_size: 8,
            epochs: 1,
            max_steps: None,
            max_source_length: 512,
            eval_every: Some(50),
            checkpoint_every: Some(50),
            prompt_template,
            seed: 42,
            ..TrainSettings::default()
        };
        let preset = match self {
            Preset::Quick => TrainSettings {
                rank: 8,
                alpha: 16.0,
                eval_every: Some(25),
                checkpoint_every: Some(25),
                ..recipe
            },
            Preset::Balanced => recipe,
            Preset::Best => TrainSettings {
                rank: 64,
                alpha: 64.0,
                targets: ["q", "k", "v", "o"].map(String::from).to_vec(),
                learning_rate: 5e-4,
                epochs: 3,
                ..recipe
            },
        };
        let examples = examples.max(1);
        let batch_size = preset.batch_size.min(examples);
        let steps_per_epoch = examples.div_ceil(batch_size);
        let epochs = preset
            .epochs
            .max(self.min_steps().div_ceil(steps_per_epoch))
            .min(50);
        let max_steps = (self == Preset::Quick && steps_per_epoch * epochs > 100).then_some(100);
        // A short run is validated and saved about ten times, not only at its end.
        let every = max_steps.unwrap_or(steps_per_epoch * epochs).div_ceil(10);
        TrainSettings {
            batch_size,
            epochs,
            max_steps,
            eval_every: preset.eval_every.map(|n| n.min(every)),
            checkpoint_every: preset.checkpoint_every.map(|n| n.min(every)),
            ..preset
        }
    }

    /// The preset whose settings `options` are, for `examples` training dialogues.
    pub fn of(options: &TrainSettings, examples: usize) -> Option<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.options(examples, options.prompt_template.clone()) == *options)
    }
}

/// Each setting's name in plain words (the method's term in brackets) and what it does, in one
/// line beside its field. The engine's messages name the fields by these labels ([`AppWords`]).
pub mod explain {
    pub const RANK_LABEL: &str = "How much it can learn (rank)";
    pub const RANK: &str = "Larger learns more and makes a bigger adapter file.";
    pub const ALPHA_LABEL: &str = "How strongly it acts (alpha)";
    pub const ALPHA: &str = "Usually equal to the rank.";
    pub const DROPOUT_LABEL: &str = "Guard against memorizing (dropout)";
    pub const DROPOUT: &str = "Hides part of it at random while learning, so that it generalizes.";
    pub const TARGETS_LABEL: &str = "Parts of the model that learn (layers)";
    pub const TARGETS: &str = "q and v is the usual choice; q, k, v and o learn more.";
    pub const LEARNING_RATE_LABEL: &str = "Step size (learning rate)";
    pub const LEARNING_RATE: &str = "Too high and learning goes wild; too low and it is slow.";
    pub const BATCH_LABEL: &str = "Dialogues per step (batch size)";
    pub const BATCH: &str = "More is steadier and needs more memory.";
    pub const EPOCHS_LABEL: &str = "Times through the data (epochs)";
    pub const EPOCHS: &str = "How many times it reads all the training dialogues.";
    pub const MAX_STEPS_LABEL: &str = "Stop after (steps)";
    pub const MAX_STEPS: &str =
        "Ends the run after this many steps; 0 lets it read the data through.";
    pub const SOURCE_LENGTH_LABEL: &str = "Longest dialogue read (tokens)";
    pub const SOURCE_LENGTH: &str = "In word pieces; longer dialogues are cut there.";
    pub const EVAL_EVERY_LABEL: &str = "Check progress every (steps)";
    pub const EVAL_EVERY: &str = "Measures the held-out dialogues this often.";
    pub const CHECKPOINT_EVERY_LABEL: &str = "Save progress every (steps)";
    pub const CHECKPOINT_EVERY: &str = "So that a stop or a crash loses little.";
    pub const SEED_LABEL: &str = "Repeatability (seed)";
    pub const SEED: &str = "The same number gives the same adapter from the same data.";
    pub const STYLE: &str = "The kind of summary it learns to write; the adapter remembers it.";
}

/// The app's words for the settings the engine's messages name: a field by the label it shows,
/// a remedy by where in the app it is done. Every setting has words here, so that no message
/// reaches a person with a command-line flag in it.
pub struct AppWords;

impl Words for AppWords {
    fn setting(&self, setting: Setting) -> String {
        use explain::*;
        let label = match setting {
            Setting::Rank => RANK_LABEL,
            Setting::Alpha => ALPHA_LABEL,
            Setting::LoraDropout => DROPOUT_LABEL,
            Setting::Targets => TARGETS_LABEL,
            Setting::LearningRate => LEARNING_RATE_LABEL,
            Setting::BatchSize => BATCH_LABEL,
            Setting::Epochs => EPOCHS_LABEL,
            Setting::MaxSteps => MAX_STEPS_LABEL,
            Setting::MaxSourceLength => SOURCE_LENGTH_LABEL,
            Setting::EvalEvery => EVAL_EVERY_LABEL,
            Setting::CheckpointEvery => CHECKPOINT_EVERY_LABEL,
            Setting::Seed => SEED_LABEL,
            Setting::PromptTemplate => "Kind of summary",
            Setting::DialogueColumn => {
                return "the Dialogue column field (Data, Column names)".into();
            }
            Setting::SummaryColumn => {
                return "the Summary column field (Data, Column names)".into();
            }
            Setting::IdColumn => return "the Id column field (Data, Column names)".into(),
            Setting::Precision => return "the Weights setting (Model screen)".into(),
            // Fixed in the app: named by what they are.
            Setting::Full => "Train every weight",
            Setting::UseRslora => "Rank-stabilized scaling",
            Setting::WeightDecay => "Weight decay",
            Setting::GradientAccumulation => "Steps accumulated",
            Setting::WarmupSteps => "Warm-up steps",
            Setting::Schedule => "Learning-rate schedule",
            Setting::MaxGradNorm => "Gradient clipping",
            Setting::Shuffle => "Shuffling",
            Setting::MaxTargetLength => "Longest summary learned (128 tokens)",
            Setting::ModelDropout => "Model dropout",
            Setting::IncludeDrafts => "Train on drafts",
        };
        format!("\"{label}\"")
    }

    fn remedy(&self, setting: Setting) -> String {
        match setting {
            Setting::IncludeDrafts => "accept them on the Review screen to train on them".into(),
            Setting::DialogueColumn | Setting::SummaryColumn | Setting::IdColumn => {
                format!("name it in {}", self.setting(setting))
            }
            other => format!("change {}", self.setting(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Preset;

    #[test]
    fn presets_give_small_datasets_enough_steps_and_keep_their_order() {
        for examples in [1, 4, 9, 40, 500, 12_460] {
            let steps: Vec<usize> = Preset::ALL
                .into_iter()
                .map(|p| {
                    let o = p.options(examples, String::new());
                    assert!(o.batch_size <= examples, "{p:?} on {examples}");
                    o.max_steps
                        .unwrap_or(examples.div_ceil(o.batch_size) * o.epochs)
                })
                .collect();
            assert!(steps[0] >= 10 && steps[0] <= 100, "{examples}: {steps:?}");
            assert!(
                steps[0] <= steps[1] && steps[1] <= steps[2],
                "{examples}: {steps:?}"
            );
        }
        // A large set keeps the published recipe: one pass in batches of 8.
        let balanced = Preset::Balanced.options(12_460, String::new());
        assert_eq!((balanced.batch_size, balanced.epochs), (8, 1));
        assert_eq!(Preset::of(&balanced, 12_460), Some(Preset::Balanced));
    }
}

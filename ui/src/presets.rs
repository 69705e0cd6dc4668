//! Training presets in plain words, and the one-line explanation of each setting they fill in.

use crate::protocol::TrainOptions;

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

    pub fn description(self) -> &'static str {
        match self {
            Preset::Quick => "A first try in minutes: a small adapter, at most 100 steps.",
            Preset::Balanced => "The published recipe: rank 32 on q and v, one pass over the data.",
            Preset::Best => "More capacity and three passes: slower, usually better summaries.",
        }
    }

    pub fn options(self) -> TrainOptions {
        let recipe = TrainOptions {
            rank: 32,
            alpha: 32.0,
            dropout: 0.05,
            targets: vec!["q".into(), "v".into()],
            learning_rate: 1e-3,
            batch_size: 8,
            epochs: 1,
            max_steps: None,
            max_source_length: 512,
            eval_every: 50,
            checkpoint_every: 50,
            seed: 42,
        };
        match self {
            Preset::Quick => TrainOptions {
                rank: 8,
                alpha: 16.0,
                max_steps: Some(100),
                eval_every: 25,
                checkpoint_every: 25,
                ..recipe
            },
            Preset::Balanced => recipe,
            Preset::Best => TrainOptions {
                rank: 64,
                alpha: 64.0,
                targets: ["q", "k", "v", "o"].map(String::from).to_vec(),
                learning_rate: 5e-4,
                epochs: 3,
                ..recipe
            },
        }
    }
}

/// What each setting does, in one line, beside its field.
pub mod explain {
    pub const RANK: &str = "Size of the adapter: larger learns more and makes a bigger file.";
    pub const ALPHA: &str = "How strongly the adapter acts; usually equal to the rank.";
    pub const DROPOUT: &str =
        "Randomly hides part of the adapter while learning, against overfitting.";
    pub const TARGETS: &str =
        "Which layers get an adapter: q,v is the usual choice; q,k,v,o learns more.";
    pub const LEARNING_RATE: &str =
        "Size of each learning step: too high diverges, too low learns slowly.";
    pub const BATCH: &str = "Dialogues per step: more is steadier and needs more memory.";
    pub const EPOCHS: &str = "How many times to go through all the training dialogues.";
    pub const MAX_STEPS: &str = "Stop after this many steps (0: no limit beyond the passes).";
    pub const SOURCE_LENGTH: &str = "Longest dialogue in tokens; longer ones are cut.";
    pub const EVAL_EVERY: &str = "Measure the validation loss every this many steps.";
    pub const CHECKPOINT_EVERY: &str =
        "Save progress every this many steps, so a stop loses little.";
    pub const SEED: &str = "Makes a run repeatable: the same seed gives the same adapter.";
}

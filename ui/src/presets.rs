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
            Preset::Balanced => {
                "The published recipe (rank 32 on q and v): one pass over a large data set, more over a small one."
            }
            Preset::Best => {
                "More capacity and at least three passes: slower, usually better summaries."
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
    pub fn options(self, examples: usize, prompt_template: Option<String>) -> TrainOptions {
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
            prompt_template,
            seed: 42,
        };
        let preset = match self {
            Preset::Quick => TrainOptions {
                rank: 8,
                alpha: 16.0,
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
        TrainOptions {
            batch_size,
            epochs,
            max_steps,
            eval_every: preset.eval_every.min(every),
            checkpoint_every: preset.checkpoint_every.min(every),
            ..preset
        }
    }

    /// The preset whose settings `options` are, for `examples` training dialogues.
    pub fn of(options: &TrainOptions, examples: usize) -> Option<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.options(examples, options.prompt_template.clone()) == *options)
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
    pub const STYLE: &str = "The kind of summary it learns to write; the adapter remembers it.";
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
                    let o = p.options(examples, None);
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
        let balanced = Preset::Balanced.options(12_460, None);
        assert_eq!((balanced.batch_size, balanced.epochs), (8, 1));
        assert_eq!(Preset::of(&balanced, 12_460), Some(Preset::Balanced));
    }
}

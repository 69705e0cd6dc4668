//! The optimizer side of training, with PyTorch's exact semantics: AdamW (decoupled weight decay,
//! bias correction) and clipping by the global gradient norm. The learning-rate schedules are the
//! settings crate's `Schedule`.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::model::t5::Gradients;

/// The first and second moments of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    pub first: Vec<f32>,
    pub second: Vec<f32>,
}

/// `torch.optim.AdamW` with betas (0.9, 0.999) and eps 1e-8.
#[derive(Debug, Clone)]
pub struct AdamW {
    pub weight_decay: f64,
    /// Optimizer steps taken so far.
    pub steps: u64,
    pub moments: BTreeMap<String, Moments>,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl AdamW {
    pub fn new(weight_decay: f64) -> Self {
        Self {
            weight_decay,
            steps: 0,
            moments: BTreeMap::new(),
        }
    }

    /// transformers' Trainer leaves layer-norm weights out of weight decay.
    fn decays(name: &str) -> bool {
        !name.contains("layer_norm")
    }

    /// One step for every parameter `visit` offers that has a gradient, each gradient first
    /// multiplied by `gradient_scale` (the clipping factor).
    pub fn step(
        &mut self,
        gradients: &Gradients,
        gradient_scale: f64,
        learning_rate: f64,
        visit: impl FnOnce(&mut dyn FnMut(&str, &mut Tensor)),
    ) -> Result<()> {
        self.steps += 1;
        let step = self.steps as i32;
        let bias_correction1 = 1.0 - BETA1.powi(step);
        let bias_correction2_sqrt = (1.0 - BETA2.powi(step)).sqrt();
        let step_size = (learning_rate / bias_correction1) as f32;
        let mut failure = None;
        visit(&mut |name, parameter| {
            let Some(gradient) = gradients.0.get(name) else {
                return;
            };
            let decay = if Self::decays(name) {
                (1.0 - learning_rate * self.weight_decay) as f32
            } else {
                1.0
            };
            let updated = (|| -> Result<Tensor> {
                let grad = gradient
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?;
                let mut values = parameter.flatten_all()?.to_vec1::<f32>()?;
                let moments = self
                    .moments
                    .entry(name.to_string())
                    .or_insert_with(|| Moments {
                        first: vec![0.0; values.len()],
                        second: vec![0.0; values.len()],
                    });
                let scale = gradient_scale as f32;
                let (b1, b2) = ((1.0 - BETA1) as f32, BETA2 as f32);
                let c2 = bias_correction2_sqrt as f32;
                for (((p, &g), m), v) in values
                    .iter_mut()
                    .zip(&grad)
                    .zip(&mut moments.first)
                    .zip(&mut moments.second)
                {
                    let g = g * scale;
                    *p *= decay;
                    *m += b1 * (g - *m);
                    *v = *v * b2 + (1.0 - b2) * g * g;
                    let denom = v.sqrt() / c2 + EPSILON as f32;
                    *p += -step_size * (*m / denom);
                }
                Ok(Tensor::from_vec(
                    values,
                    parameter.shape(),
                    parameter.device(),
                )?)
            })();
            match updated {
                Ok(tensor) => *parameter = tensor,
                Err(error) => failure = Some(error),
            }
        });
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// The factor `torch.nn.utils.clip_grad_norm_` multiplies every gradient by, and the global norm.
pub fn clip_factor(gradients: &Gradients, max_norm: f64) -> Result<(f64, f64)> {
    let mut squares = 0f64;
    for gradient in gradients.0.values() {
        let norm = gradient.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64;
        squares += norm * norm;
    }
    let total = squares.sqrt();
    if max_norm <= 0.0 {
        return Ok((1.0, total));
    }
    Ok(((max_norm / (total + 1e-6)).min(1.0), total))
}

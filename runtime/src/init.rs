//! Reproducible weight initialisation: a `VarBuilder` whose new variables are drawn from the
//! runtime's seeded generator ([`crate::seed`]) instead of candle's unseedable device RNG.
//!
//! Each variable gets its own generator, seeded from `(seed, variable name)`, so its values
//! depend on the seed, its name, shape and [`Init`] hint only, not on the order in which
//! layers are built.
//!
//! ```
//! # use candle_core::{DType, Device};
//! # use candle_nn::VarMap;
//! use convnet_runtime::init::seeded_var_builder;
//! # fn main() -> candle_core::Result<()> {
//! let (a, b) = (VarMap::new(), VarMap::new());
//! let la = candle_nn::linear(4, 2, seeded_var_builder(&a, 42, DType::F32, &Device::Cpu))?;
//! let lb = candle_nn::linear(4, 2, seeded_var_builder(&b, 42, DType::F32, &Device::Cpu))?;
//! assert_eq!(la.weight().to_vec2::<f32>()?, lb.weight().to_vec2::<f32>()?);
//! # Ok(()) }
//! ```

use crate::seed::named_rng;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::Rng;

/// A `candle_nn` variable backend that creates missing variables in a [`VarMap`] from their
/// [`Init`] hint with a generator seeded per variable from `(seed, name)`; variables already
/// in the map are returned as they are (after a shape check), like `VarMap`'s own backend.
#[derive(Clone)]
pub struct SeededInit {
    varmap: VarMap,
    seed: u64,
}

impl SeededInit {
    /// A backend that stores new variables in `varmap` (shared, not copied) under `seed`.
    pub fn new(varmap: &VarMap, seed: u64) -> Self {
        Self {
            varmap: varmap.clone(),
            seed,
        }
    }
}

/// A `VarBuilder` over `varmap` whose new variables are initialised reproducibly from
/// `seed` (see [`SeededInit`]); pass it to a model's `new` in place of
/// `VarBuilder::from_varmap`.
pub fn seeded_var_builder<'a>(
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'a> {
    VarBuilder::from_backend(
        Box::new(SeededInit::new(varmap, seed)),
        dtype,
        device.clone(),
    )
}

/// Draws a tensor of `shape` from `init` with the generator of variable `name` under
/// `seed`: the values [`SeededInit`] gives that variable.
///
/// # Shapes
/// Returns a tensor of `shape`.
pub fn seeded_tensor(
    init: &Init,
    shape: &Shape,
    name: &str,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let n = shape.elem_count();
    let mut rng = named_rng(seed, name);
    let uniform = |rng: &mut rand_chacha::ChaCha8Rng, lo: f64, up: f64| -> Vec<f64> {
        (0..n)
            .map(|_| lo + (up - lo) * rng.random::<f64>())
            .collect()
    };
    let normal = |rng: &mut rand_chacha::ChaCha8Rng, mean: f64, std: f64| -> Vec<f64> {
        // Box-Muller; `1 - u` keeps the logarithm's argument in (0, 1].
        (0..n)
            .map(|_| {
                let (u1, u2) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
                mean + std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect()
    };
    let values = match *init {
        Init::Const(c) => vec![c; n],
        Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
        Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(&mut rng, -bound, bound)
                }
                NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
            }
        }
    };
    Tensor::from_vec(values, shape.clone(), device)?.to_dtype(dtype)
}

impl SimpleBackend for SeededInit {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let mut data =
            self.varmap.data().lock().map_err(|_| {
                candle_core::Error::msg("seeded init: the VarMap's lock is poisoned")
            })?;
        if let Some(var) = data.get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "seeded init: variable `{name}` exists with shape {:?}, requested {:?}",
                    var.dims(),
                    shape.dims()
                );
            }
            return Ok(var.as_tensor().clone());
        }
        let var = Var::from_tensor(&seeded_tensor(
            &init, &shape, name, self.seed, dtype, device,
        )?)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _device: &Device) -> Result<Tensor> {
        candle_core::bail!(
            "seeded init: `{name}` requested without a shape; use `get` with a shape and an init"
        )
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::init::{FanInOut, NonLinearity};

    fn values(t: &Tensor) -> Vec<f64> {
        t.flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn mean_std(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn values_depend_on_seed_and_name_not_on_creation_order() {
        let dev = Device::Cpu;
        let (a, b, c) = (VarMap::new(), VarMap::new(), VarMap::new());
        let init = Init::Uniform { lo: -1.0, up: 1.0 };
        let va = seeded_var_builder(&a, 3, DType::F32, &dev);
        va.get_with_hints(5, "first", init).unwrap();
        va.get_with_hints(5, "second", init).unwrap();
        let vb = seeded_var_builder(&b, 3, DType::F32, &dev);
        vb.get_with_hints(5, "second", init).unwrap();
        vb.get_with_hints(5, "first", init).unwrap();
        let vc = seeded_var_builder(&c, 4, DType::F32, &dev);
        vc.get_with_hints(5, "first", init).unwrap();
        let get = |m: &VarMap, n: &str| values(m.data().lock().unwrap()[n].as_tensor());
        assert_eq!(get(&a, "first"), get(&b, "first"));
        assert_eq!(get(&a, "second"), get(&b, "second"));
        assert_ne!(get(&a, "first"), get(&a, "second"));
        assert_ne!(get(&a, "first"), get(&c, "first"));
        // Asking again returns the stored variable, not a new draw.
        let again = va.get_with_hints(5, "first", init).unwrap();
        assert_eq!(values(&again), get(&a, "first"));
        // A different shape under an existing name is an error naming both.
        let err = va.get_with_hints(6, "first", init).unwrap_err().to_string();
        assert!(
            err.contains("first") && err.contains("[5]") && err.contains("[6]"),
            "{err}"
        );
    }

    #[test]
    fn distributions_follow_their_hints() {
        let dev = Device::Cpu;
        let shape = Shape::from((64, 32, 3, 3));
        let draw =
            |init: Init| values(&seeded_tensor(&init, &shape, "w", 9, DType::F32, &dev).unwrap());
        let c = draw(Init::Const(0.5));
        assert!(c.iter().all(|&x| x == 0.5));
        let u = draw(Init::Uniform { lo: -0.2, up: 0.6 });
        assert!(u.iter().all(|&x| (-0.2..0.6).contains(&x)));
        let (m, s) = mean_std(&u);
        assert!(
            (m - 0.2).abs() < 0.01 && (s - 0.8 / 12f64.sqrt()).abs() < 0.01,
            "{m} {s}"
        );
        let r = draw(Init::Randn {
            mean: 1.0,
            stdev: 2.0,
        });
        let (m, s) = mean_std(&r);
        assert!((m - 1.0).abs() < 0.05 && (s - 2.0).abs() < 0.05, "{m} {s}");
        // Kaiming: std = gain / sqrt(fan_in), fan_in = 32 * 3 * 3.
        let want = 2f64.sqrt() / (32.0 * 9.0f64).sqrt();
        for dist in [NormalOrUniform::Normal, NormalOrUniform::Uniform] {
            let k = draw(Init::Kaiming {
                dist,
                fan: FanInOut::FanIn,
                non_linearity: NonLinearity::ReLU,
            });
            let (m, s) = mean_std(&k);
            assert!(
                m.abs() < 0.005 && (s / want - 1.0).abs() < 0.03,
                "{dist:?}: {m} {s} vs {want}"
            );
        }
    }
}

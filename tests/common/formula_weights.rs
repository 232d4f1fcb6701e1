//! Weights from a formula keyed by variable name and element index, so that a model here and
//! its PyTorch port (`scripts/pytorch_parity.py`, which implements the same formula) hold
//! bit-identical weights without a weight file.
//!
//! For variable `name` and row-major element index `i`:
//! `u = (splitmix64(fnv1a64(name) ^ i) >> 11) * 2^-52 - 1`, in `[-1, 1)`, then by the name's
//! last segment and the rank: `running_mean` 0.1u, `running_var` 1 + 0.5|u|, `bias` 0.1u,
//! rank-1 `weight` (batch-norm gamma) 1 + 0.1u, and a weight of rank 2 or more
//! `u * sqrt(6 / fan_in)` with `fan_in = elements / shape[0]`; computed in f64 and rounded
//! once to f32.

use candle_core::{Device, Result, Tensor};
use candle_nn::VarMap;

/// 64-bit FNV-1a hash of the name's UTF-8 bytes.
pub fn fnv1a64(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The splitmix64 finaliser (Steele, Lea and Flood), with its increment.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Element `i` of the stream keyed by `key` (an FNV-1a hash), in `[-1, 1)`.
fn unit_at(key: u64, i: usize) -> f64 {
    (splitmix64(key ^ i as u64) >> 11) as f64 * 2f64.powi(-52) - 1.0
}

/// The value of convnet variable `name` of `shape`, row-major; an error names a variable no
/// rule covers.
pub fn formula(name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let count: usize = shape.iter().product();
    let key = fnv1a64(name);
    let u = (0..count).map(move |i| unit_at(key, i));
    let last = name.rsplit('.').next().unwrap_or(name);
    let values: Vec<f64> = match (last, shape.len()) {
        ("running_mean", _) => u.map(|u| 0.1 * u).collect(),
        ("running_var", _) => u.map(|u| 1.0 + 0.5 * u.abs()).collect(),
        ("bias", _) => u.map(|u| 0.1 * u).collect(),
        ("weight", 1) => u.map(|u| 1.0 + 0.1 * u).collect(),
        ("weight", r) if r >= 2 => {
            let scale = (6.0 / (count / shape[0]) as f64).sqrt();
            u.map(|u| u * scale).collect()
        }
        _ => {
            candle_core::bail!("formula weights: no rule for variable `{name}` of shape {shape:?}")
        }
    };
    Ok(values.into_iter().map(|v| v as f32).collect())
}

/// The formula's input: `u` keyed by the name `input`, as f32 of `shape`.
pub fn input(shape: &[usize]) -> Result<Tensor> {
    let key = fnv1a64("input");
    let count: usize = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|i| unit_at(key, i) as f32).collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// Sets every variable of `varmap` (f32, CPU) from [`formula`]; returns their names, sorted.
pub fn fill(varmap: &VarMap) -> Result<Vec<String>> {
    let data = varmap.data().lock().unwrap();
    let mut names = Vec::with_capacity(data.len());
    for (name, var) in data.iter() {
        let shape = var.as_tensor().dims().to_vec();
        var.set(&Tensor::from_vec(
            formula(name, &shape)?,
            shape,
            &Device::Cpu,
        )?)?;
        names.push(name.clone());
    }
    names.sort();
    Ok(names)
}

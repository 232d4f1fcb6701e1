//! A model's variables in forward order: the model's side of a name mapping.

use crate::model::{Network, Summary};
use candle_core::Result;
use candle_nn::VarMap;

/// A model's variables with their shapes, in forward order: the layers as `summary()` lists
/// them, and within a layer its sub-paths alphabetically (`depthwise` before `pointwise`), then
/// `weight`, `bias`, `running_mean`, `running_var`, then any other leaf by name; PyTorch's
/// modules register their tensors in the same order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamList {
    /// `(name, shape)` of each variable, in order.
    pub entries: Vec<(String, Vec<usize>)>,
}

/// Where a variable goes: its layer's row, sub-path, leaf rank, leaf.
type SortKey = (usize, String, usize, String);

fn leaf_rank(leaf: &str) -> usize {
    match leaf {
        "weight" => 0,
        "bias" => 1,
        "running_mean" => 2,
        "running_var" => 3,
        _ => 4,
    }
}

impl ParamList {
    /// Every variable of `varmap` (built by `M::new`), ordered by `M::summary()`.
    pub fn of<M: Network>(varmap: &VarMap) -> Result<Self> {
        Self::under(&M::summary(), varmap, "")
    }

    /// The variables of `varmap` under `prefix` (a model built with `vb.pp(prefix)`; `""`
    /// for all), ordered by `summary`, that model's summary. Variables that no summary row
    /// names come last, by name.
    pub fn under(summary: &Summary, varmap: &VarMap, prefix: &str) -> Result<Self> {
        let data = varmap.data().lock().unwrap();
        let scope = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        let rows: Vec<String> = summary
            .rows
            .iter()
            .map(|r| format!("{scope}{}.", r.name))
            .collect();
        let mut keyed: Vec<(SortKey, String, Vec<usize>)> = data
            .iter()
            .filter(|(name, _)| name.starts_with(&scope))
            .map(|(name, var)| {
                // The longest row name that prefixes the variable: its layer.
                let row = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| name.starts_with(r.as_str()))
                    .max_by_key(|(_, r)| r.len());
                let (index, rest) = match row {
                    Some((i, r)) => (i, &name[r.len()..]),
                    None => (rows.len(), name.as_str()),
                };
                let (sub, leaf) = rest.rsplit_once('.').unwrap_or(("", rest));
                let key = (index, sub.to_string(), leaf_rank(leaf), leaf.to_string());
                (key, name.clone(), var.dims().to_vec())
            })
            .collect();
        keyed.sort();
        Ok(Self {
            entries: keyed.into_iter().map(|(_, n, s)| (n, s)).collect(),
        })
    }

    /// This list followed by `other` (a backbone's variables, then its head's).
    pub fn chain(mut self, other: ParamList) -> Self {
        self.entries.extend(other.entries);
        self
    }

    /// Parses a key list, one `name d1,d2,...` per line (`#` starts a comment line): the
    /// format of `tests/fixtures/torchvision/*.keys`.
    pub fn parse_keys(text: &str) -> Result<Self> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                crate::error::Error::invalid(
                    format!("key list line {}", i + 1),
                    format!("expected `name d1,d2,...`, got `{line}`"),
                )
            };
            let (name, dims) = line.split_once(' ').ok_or_else(bad)?;
            let shape = if dims.is_empty() {
                Vec::new()
            } else {
                dims.split(',')
                    .map(|d| d.parse::<usize>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|_| bad())?
            };
            entries.push((name.to_string(), shape));
        }
        Ok(Self { entries })
    }
}

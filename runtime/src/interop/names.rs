//! How a model's variable names relate to a file's keys: ordered regex remaps, ignored keys,
//! pairing by order or against a key list.

use super::layout::compatible;
use super::params::ParamList;
use crate::error::Error;
use candle_core::Result;
use regex::Regex;

/// One rename: every match of `pattern` in a name is replaced by `replacement` (`$1`, `${name}`
/// refer to capture groups, as in [`regex::Regex::replace_all`]).
#[derive(Debug, Clone)]
pub struct Remap {
    pattern: Regex,
    replacement: String,
}

impl Remap {
    /// A rule; a pattern that is not a valid regex is an
    /// [`Error::InvalidArgument`] naming it.
    pub fn new(pattern: &str, replacement: &str) -> Result<Self> {
        let pattern = Regex::new(pattern)
            .map_err(|e| Error::invalid(format!("name pattern `{pattern}`"), e.to_string()))?;
        Ok(Self {
            pattern,
            replacement: replacement.to_string(),
        })
    }

    /// `name` with every match replaced.
    pub fn apply(&self, name: &str) -> String {
        self.pattern
            .replace_all(name, self.replacement.as_str())
            .into_owned()
    }
}

/// How our variable names map to a file's keys. Build it with [`Naming::by_name`],
/// [`Naming::by_order`] or [`Naming::key_list`], then add rules:
///
/// - [`rename`](Naming::rename): rules applied in order to each of our names to give the
///   file's key (also the names [`super::export_pytorch`] writes);
/// - [`rename_source`](Naming::rename_source): rules applied in order to each of the file's
///   keys before matching, on import only (e.g. `^module\.` to nothing);
/// - [`ignore`](Naming::ignore): file keys (after `rename_source`) that are not weights of the
///   model (an auxiliary head); `num_batches_tracked` is always ignored.
///
/// Names are matched first; with [`Naming::by_order`] the variables and keys left over are then
/// paired in order (our forward order against the file's), each pair checked for a compatible
/// shape and the same kind of leaf (`weight`, `bias`, `running_mean`, `running_var`).
#[derive(Debug, Clone, Default)]
pub struct Naming {
    rename: Vec<Remap>,
    source_rename: Vec<Remap>,
    ignore: Vec<Regex>,
    keys: Option<ParamList>,
    by_order: bool,
}

/// The leaf kinds whose names both frameworks share.
const LEAVES: &[&str] = &["weight", "bias", "running_mean", "running_var"];

/// Whether two names' last segments say they hold different things (`weight` vs `bias`).
pub(crate) fn leaves_differ(a: &str, b: &str) -> bool {
    let leaf = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
    let (a, b) = (leaf(a), leaf(b));
    a != b && LEAVES.contains(&a.as_str()) && LEAVES.contains(&b.as_str())
}

impl Naming {
    /// The file's keys are our names (after any [`rename`](Naming::rename) rules).
    pub fn by_name() -> Self {
        Self::default()
    }

    /// Names first, then what is left paired in order: for a `torch.save` file of a module
    /// whose layers run in the order they were registered.
    pub fn by_order() -> Self {
        Self {
            by_order: true,
            ..Self::default()
        }
    }

    /// The file's names are `keys` (another framework's parameter list, in its registration
    /// order), paired in order with ours (a list such as `tests/fixtures/torchvision/*.keys`,
    /// for a model not written with those names). Keys matching an
    /// [`ignore`](Naming::ignore) rule are left out of the pairing.
    pub fn key_list(keys: ParamList) -> Self {
        Self {
            keys: Some(keys),
            ..Self::default()
        }
    }

    /// Adds a rule rewriting our names into the file's (applied after the key list, if any).
    pub fn rename(mut self, pattern: &str, replacement: &str) -> Result<Self> {
        self.rename.push(Remap::new(pattern, replacement)?);
        Ok(self)
    }

    /// Adds a rule rewriting the file's keys before matching (import only).
    pub fn rename_source(mut self, pattern: &str, replacement: &str) -> Result<Self> {
        self.source_rename.push(Remap::new(pattern, replacement)?);
        Ok(self)
    }

    /// Adds a pattern of file keys to ignore.
    pub fn ignore(mut self, pattern: &str) -> Result<Self> {
        let re = Regex::new(pattern)
            .map_err(|e| Error::invalid(format!("ignore pattern `{pattern}`"), e.to_string()))?;
        self.ignore.push(re);
        Ok(self)
    }

    /// Whether leftovers are paired by order.
    pub fn pairs_by_order(&self) -> bool {
        self.by_order
    }

    /// Whether the file key `key` (after [`Naming::source_key`]) is ignored.
    pub fn is_ignored(&self, key: &str) -> bool {
        key.ends_with("num_batches_tracked") || self.ignore.iter().any(|r| r.is_match(key))
    }

    /// A file key after the `rename_source` rules.
    pub fn source_key(&self, key: &str) -> String {
        self.source_rename
            .iter()
            .fold(key.to_string(), |k, rule| rule.apply(&k))
    }

    /// The file's name of each of `params`, in order, with the file's shape when a key list
    /// gives it. A key list that does not pair with `params` (another count, or a shape that
    /// does not fit at some position) is an error listing where.
    pub fn their_names(&self, params: &ParamList) -> Result<Vec<(String, Option<Vec<usize>>)>> {
        let base: Vec<(String, Option<Vec<usize>>)> = match &self.keys {
            None => params
                .entries
                .iter()
                .map(|(n, _)| (n.clone(), None))
                .collect(),
            Some(keys) => {
                let theirs: Vec<&(String, Vec<usize>)> = keys
                    .entries
                    .iter()
                    .filter(|(k, _)| !self.is_ignored(k))
                    .collect();
                let mut problems = Vec::new();
                for (i, ((ours, os), (th, ts))) in params
                    .entries
                    .iter()
                    .zip(theirs.iter().map(|e| (&e.0, &e.1)))
                    .enumerate()
                {
                    if !compatible(ts, os) || leaves_differ(ours, th) {
                        problems.push(format!("#{i}: `{ours}` {os:?} against `{th}` {ts:?}"));
                    }
                }
                if params.entries.len() != theirs.len() {
                    problems.push(format!(
                        "the model has {} variables, the key list {}",
                        params.entries.len(),
                        theirs.len()
                    ));
                }
                if !problems.is_empty() {
                    let shown: Vec<String> = problems.iter().take(8).cloned().collect();
                    return Err(Error::invalid(
                        "key list",
                        format!(
                            "it does not pair with the model's variables in order ({} problems): {}",
                            problems.len(),
                            shown.join("; ")
                        ),
                    )
                    .into());
                }
                theirs
                    .iter()
                    .map(|(k, s)| (k.clone(), Some(s.clone())))
                    .collect()
            }
        };
        Ok(base
            .into_iter()
            .map(|(n, s)| {
                let n = self.rename.iter().fold(n, |n, rule| rule.apply(&n));
                (n, s)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[(&str, &[usize])]) -> ParamList {
        ParamList {
            entries: entries
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn rules_apply_in_order_and_bad_patterns_are_named() {
        let naming = Naming::by_name()
            .rename(r"^block(\d+)\.", "layer$1.")
            .unwrap()
            .rename(r"\.bn\.", ".norm.")
            .unwrap();
        let names = naming
            .their_names(&list(&[("block2.bn.weight", &[4])]))
            .unwrap();
        assert_eq!(names[0].0, "layer2.norm.weight");
        let err = Naming::by_name().rename("(", "x").unwrap_err().to_string();
        assert!(err.contains("name pattern `(`"), "{err}");
    }

    #[test]
    fn key_lists_pair_in_order_and_report_where_they_do_not() {
        let ours = list(&[("conv1.weight", &[8, 3, 3, 3]), ("linear1.weight", &[5, 8])]);
        let keys = list(&[
            ("features.0.weight", &[8, 3, 3, 3]),
            ("aux.weight", &[2]),
            ("head.weight", &[5, 8, 1, 1]),
        ]);
        let naming = Naming::key_list(keys.clone()).ignore("^aux").unwrap();
        let names: Vec<String> = naming
            .their_names(&ours)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["features.0.weight", "head.weight"]);
        let err = Naming::key_list(keys)
            .their_names(&ours)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`linear1.weight` [5, 8] against `aux.weight` [2]"),
            "{err}"
        );
        assert!(
            err.contains("the model has 2 variables, the key list 3"),
            "{err}"
        );
    }
}

//! Parameter groups: several optimizers over disjoint sets of variables, each with its own
//! learning rate as a factor of one base rate (a pretrained backbone at a tenth of the
//! head's rate), driven as one [`TrainOptimizer`].

use super::{validate_lr, OptimizerState, TrainOptimizer};
use candle_core::backprop::GradStore;
use candle_core::{Result, Var};
use std::collections::{BTreeSet, HashMap};

/// Variables with their names.
type NamedVars = Vec<(String, Var)>;

struct Group {
    factor: f64,
    vars: BTreeSet<String>,
    optimizer: Box<dyn TrainOptimizer>,
}

/// Optimizers over disjoint groups of variables, each at `factor x` the base learning rate;
/// [`TrainOptimizer::set_lr`] (a schedule) sets the base rate and so scales every group.
pub struct ParamGroups {
    base_lr: f64,
    groups: Vec<Group>,
}

/// Splits `vars` into those under one of `prefixes` (path prefixes, as
/// [`crate::freeze::is_frozen`] matches them) and the rest.
pub fn split_by_prefix(
    vars: NamedVars,
    prefixes: &crate::freeze::Prefixes,
) -> (NamedVars, NamedVars) {
    vars.into_iter()
        .partition(|(name, _)| crate::freeze::is_frozen(name, prefixes))
}

impl ParamGroups {
    /// No groups yet, base learning rate `base_lr` (finite, `>= 0`).
    pub fn new(base_lr: f64) -> Result<Self> {
        validate_lr("groups", base_lr)?;
        Ok(Self {
            base_lr,
            groups: Vec::new(),
        })
    }

    /// Adds a group: `vars` (none of them in an earlier group) updated by the optimizer
    /// `make(vars, base_lr * factor)` builds.
    pub fn add<O: TrainOptimizer + 'static>(
        mut self,
        vars: Vec<(String, Var)>,
        factor: f64,
        make: impl FnOnce(Vec<(String, Var)>, f64) -> O,
    ) -> Result<Self> {
        validate_lr("group", self.base_lr * factor)?;
        let names: BTreeSet<String> = vars.iter().map(|(n, _)| n.clone()).collect();
        if let Some(twice) = self
            .groups
            .iter()
            .find_map(|g| g.vars.intersection(&names).next().cloned())
        {
            candle_core::bail!("variable `{twice}` is in two parameter groups");
        }
        let optimizer = Box::new(make(vars, self.base_lr * factor));
        self.groups.push(Group {
            factor,
            vars: names,
            optimizer,
        });
        Ok(self)
    }

    /// The learning rate of each group, in the order they were added.
    pub fn group_lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.optimizer.lr()).collect()
    }
}

impl TrainOptimizer for ParamGroups {
    fn kind(&self) -> &'static str {
        "groups"
    }

    fn apply(&mut self, grads: &GradStore) -> Result<()> {
        self.groups
            .iter_mut()
            .try_for_each(|g| g.optimizer.apply(grads))
    }

    fn lr(&self) -> f64 {
        self.base_lr
    }

    fn set_lr(&mut self, lr: f64) -> Result<()> {
        validate_lr("groups", lr)?;
        for g in &self.groups {
            validate_lr("group", lr * g.factor)?;
        }
        for g in &mut self.groups {
            g.optimizer.set_lr(lr * g.factor)?;
        }
        self.base_lr = lr;
        Ok(())
    }

    fn iterations(&self) -> u64 {
        self.groups.first().map_or(0, |g| g.optimizer.iterations())
    }

    fn export_state(&self) -> Result<OptimizerState> {
        let mut tensors = HashMap::new();
        for g in &self.groups {
            tensors.extend(g.optimizer.export_state()?.tensors);
        }
        Ok(OptimizerState {
            kind: "groups".into(),
            step: self.iterations(),
            learning_rate: self.base_lr,
            tensors,
        })
    }

    fn import_state(&mut self, state: &OptimizerState) -> Result<()> {
        if state.kind != "groups" {
            candle_core::bail!(
                "optimizer state is for `{}`, cannot load it into parameter groups",
                state.kind
            );
        }
        let mut per_group = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let tensors = state
                .tensors
                .iter()
                .filter(|(k, _)| k.split_once('/').is_some_and(|(_, v)| g.vars.contains(v)))
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect();
            per_group.push(OptimizerState {
                kind: g.optimizer.kind().into(),
                step: state.step,
                learning_rate: state.learning_rate * g.factor,
                tensors,
            });
        }
        let claimed: usize = per_group.iter().map(|s| s.tensors.len()).sum();
        if claimed != state.tensors.len() {
            candle_core::bail!("optimizer state holds buffers of variables in no parameter group");
        }
        for (g, s) in self.groups.iter_mut().zip(per_group) {
            g.optimizer.import_state(&s)?;
        }
        self.base_lr = state.learning_rate;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Sgd, SgdConfig};
    use candle_core::Device;

    #[test]
    fn each_group_steps_at_its_factor_of_the_base_rate() {
        let a = Var::new(&[1f32], &Device::Cpu).unwrap();
        let b = Var::new(&[1f32], &Device::Cpu).unwrap();
        let sgd = |vars, lr| {
            Sgd::new_named(
                vars,
                SgdConfig {
                    lr,
                    ..SgdConfig::default()
                },
            )
        };
        let mut groups = ParamGroups::new(0.1)
            .unwrap()
            .add(vec![("a".into(), a.clone())], 1.0, sgd)
            .unwrap()
            .add(vec![("b".into(), b.clone())], 0.1, sgd)
            .unwrap();
        let loss = (a.as_tensor() + b.as_tensor()).unwrap().sum_all().unwrap();
        groups.apply(&loss.backward().unwrap()).unwrap();
        let value = |v: &Var| v.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((value(&a) - 0.9).abs() < 1e-6, "{}", value(&a));
        assert!((value(&b) - 0.99).abs() < 1e-6, "{}", value(&b));
        groups.set_lr(0.2).unwrap();
        let lrs = groups.group_lrs();
        assert!(
            (lrs[0] - 0.2).abs() < 1e-12 && (lrs[1] - 0.02).abs() < 1e-12,
            "{lrs:?}"
        );
        let err = ParamGroups::new(0.1)
            .unwrap()
            .add(vec![("a".into(), a.clone())], 1.0, sgd)
            .unwrap()
            .add(vec![("a".into(), a)], 1.0, sgd)
            .err()
            .unwrap();
        assert!(err.to_string().contains("`a` is in two parameter groups"));
    }
}

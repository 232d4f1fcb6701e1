//! The main job's training recipe: progressive resizing stages, and the defaults measured to
//! reach the book's accuracy on this machine (see the README's "The recipe").

pub mod run_folder;

use std::fmt;
use std::str::FromStr;

/// One stage of progressive resizing: `epochs` epochs at `size`x`size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Square input size (one of [`crate::models::SIZES`]).
    pub size: usize,
    /// Epochs trained at this size (at least 1).
    pub epochs: usize,
}

/// The stages of a run, trained in order on one `VarMap`, written `SIZE:EPOCHS,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages(pub Vec<Stage>);

/// The recipe's stages for the real photos: most epochs at 96x96 (about a quarter of the cost
/// of a 180x180 epoch), then 128, then the book's 180 for the weights to settle at the size
/// they are scored at.
pub const RECIPE: &str = "96:30,128:20,180:8";

/// The stages for the built-in generated data (circles vs squares learn in a few epochs).
pub const GENERATED: &str = "64:10";

/// Steps of the learning-rate warm-up: 2 epochs (the recipe's), but at most a fifth of the
/// run, so that a short run is not all warm-up (`--epochs 2` warms up for 0.4 epochs; runs of
/// 10 epochs or more keep the 2 epochs).
pub fn warmup_steps(steps_per_epoch: usize, total_steps: usize) -> usize {
    (2 * steps_per_epoch).min(total_steps / 5)
}

impl Stages {
    /// Total epochs over all stages.
    pub fn epochs(&self) -> usize {
        self.0.iter().map(|s| s.epochs).sum()
    }

    /// The last stage, whose size the checkpoint and the test score use.
    pub fn last(&self) -> Stage {
        *self.0.last().expect("parsing refuses an empty list")
    }
}

impl FromStr for Stages {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let stages =
            text.split(',')
                .map(|part| {
                    let (size, epochs) = part.trim().split_once(':').ok_or_else(|| {
                        format!("stage `{part}` is not SIZE:EPOCHS (e.g. `96:30,180:10`)")
                    })?;
                    let size: usize = size
                        .trim()
                        .parse()
                        .map_err(|_| format!("stage `{part}`: size `{size}` is not a number"))?;
                    let epochs: usize = epochs.trim().parse().map_err(|_| {
                        format!("stage `{part}`: epochs `{epochs}` is not a number")
                    })?;
                    if !crate::models::SIZES.contains(&size) {
                        return Err(format!(
                            "stage `{part}`: size {size} is not compiled in; choose one of {:?}",
                            crate::models::SIZES
                        ));
                    }
                    if epochs == 0 {
                        return Err(format!("stage `{part}`: epochs must be at least 1"));
                    }
                    Ok(Stage { size, epochs })
                })
                .collect::<Result<Vec<_>, String>>()?;
        Ok(Stages(stages))
    }
}

impl fmt::Display for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|s| format!("{}:{}", s.size, s.epochs))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_and_print_back() {
        let stages: Stages = RECIPE.parse().unwrap();
        assert_eq!(stages.to_string(), RECIPE);
        assert_eq!(
            stages.last(),
            Stage {
                size: 180,
                epochs: 8
            }
        );
        assert_eq!(stages.epochs(), 58);
        assert_eq!(
            " 64:3 ".parse::<Stages>().unwrap().0,
            vec![Stage {
                size: 64,
                epochs: 3
            }]
        );
    }

    #[test]
    fn warm_up_scales_with_short_runs_only() {
        let spe = 63;
        let recipe: Stages = RECIPE.parse().unwrap();
        assert_eq!(warmup_steps(spe, recipe.epochs() * spe), 2 * spe);
        assert_eq!(warmup_steps(spe, 10 * spe), 2 * spe);
        assert_eq!(warmup_steps(spe, 2 * spe), 2 * spe / 5);
        assert!(warmup_steps(spe, 2 * spe) < 2 * spe);
    }

    #[test]
    fn bad_stages_are_refused_with_the_reason() {
        for (bad, says) in [
            ("", "not SIZE:EPOCHS"),
            ("96", "not SIZE:EPOCHS"),
            ("96:x", "epochs `x`"),
            ("97:3", "size 97 is not compiled in"),
            ("96:0", "at least 1"),
            ("96:3,", "not SIZE:EPOCHS"),
        ] {
            let err = bad.parse::<Stages>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}

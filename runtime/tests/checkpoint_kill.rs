//! A checkpoint writer killed (`SIGKILL`) at random moments never leaves a checkpoint that
//! loads inconsistently: every surviving checkpoint verifies and is one whole save (weights,
//! optimizer state and training state from the same step).
//!
//! The writer is this test binary itself, re-run as the ignored test
//! `checkpoint_writer_child` with `CONVNET_CKPT_WRITER_DIR` set.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, VarMap};
use convnet_runtime::optim::{Adam, AdamConfig, TrainOptimizer};
use convnet_runtime::train::{load_checkpoint, save_checkpoint, EpochLogs, History};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const DIR_VAR: &str = "CONVNET_CKPT_WRITER_DIR";

fn model() -> Result<VarMap> {
    let vm = VarMap::new();
    // About 1 MiB of weights, so that a kill often lands inside a write.
    vm.get((512, 512), "w", Init::Const(0.), DType::F32, &Device::Cpu)?;
    vm.get(64, "b", Init::Const(0.), DType::F32, &Device::Cpu)?;
    Ok(vm)
}

fn history(epochs: usize) -> History {
    History {
        epochs: (0..epochs)
            .map(|epoch| EpochLogs {
                epoch,
                loss: epoch as f64,
                accuracy: None,
                val_loss: None,
                val_accuracy: None,
                lr: 1e-3,
                seconds: 0.0,
            })
            .collect(),
    }
}

/// Writes checkpoint after checkpoint into `$CONVNET_CKPT_WRITER_DIR/ckpt` until killed,
/// resuming from the checkpoint there; save `k` has every weight equal to `k`, `k` optimizer
/// steps, epoch `k` and `k` history entries.
#[test]
#[ignore = "child process of `checkpoints_survive_kill_at_random_moments`, which runs it"]
fn checkpoint_writer_child() -> Result<()> {
    let root = std::env::var(DIR_VAR)
        .unwrap_or_else(|_| panic!("{DIR_VAR} must name the folder to write checkpoints to"));
    let dir = Path::new(&root).join("ckpt");
    let vm = model()?;
    let mut opt = Adam::from_varmap(&vm, AdamConfig::default());
    let start = match dir.exists() {
        true => load_checkpoint(&dir, &vm, Some(&mut opt))?.epoch + 1,
        false => 1,
    };
    for k in start.. {
        let vars = vm.all_vars();
        let loss = vars
            .iter()
            .map(|v| v.as_tensor().sum_all())
            .collect::<Result<Vec<_>>>()?;
        let grads = Tensor::stack(&loss, 0)?.sum_all()?.backward()?;
        opt.apply(&grads)?;
        for v in &vars {
            v.set(&v.as_tensor().ones_like()?.affine(k as f64, 0.)?)?;
        }
        save_checkpoint(&dir, &vm, Some(&opt), k, k as u64, &history(k), None)?;
    }
    Ok(())
}

/// Loads the checkpoint in `dir` (if any) and checks it is one whole save; returns its `k`.
fn check_consistent(dir: &Path) -> Result<Option<usize>> {
    if !dir.exists() {
        return Ok(None);
    }
    let vm = model()?;
    let mut opt = Adam::from_varmap(&vm, AdamConfig::default());
    let state = load_checkpoint(dir, &vm, Some(&mut opt))?;
    let k = state.epoch;
    assert_eq!(state.global_step, k as u64, "step of another save");
    assert_eq!(state.history.len(), k, "history of another save");
    assert_eq!(
        opt.iterations(),
        k as u64,
        "optimizer state of another save"
    );
    for v in vm.all_vars() {
        let values = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        assert!(
            values.iter().all(|&x| x == k as f32),
            "weights of another save than epoch {k}"
        );
    }
    Ok(Some(k))
}

#[test]
fn checkpoints_survive_kill_at_random_moments() -> Result<()> {
    let root = std::env::temp_dir().join(format!("convnet-ckpt-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let dir = root.join("ckpt");
    let exe = std::env::current_exe()?;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut survivors = Vec::new();
    for round in 0..30 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(&exe)
            .args([
                "checkpoint_writer_child",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(DIR_VAR, &root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // The first rounds give the writer time for a few saves; later ones kill at any
        // moment from start-up on.
        let ms = if round < 3 { 400 } else { 0 } + seed % 250;
        std::thread::sleep(Duration::from_millis(ms));
        if let Some(status) = child.try_wait()? {
            panic!("the writer exited by itself ({status}) in round {round}");
        }
        child.kill()?;
        child.wait()?;
        match check_consistent(&dir) {
            Ok(k) => survivors.extend(k),
            Err(e) => panic!("round {round} (killed after {ms} ms): checkpoint refused: {e}"),
        }
    }
    assert!(
        survivors.len() >= 25,
        "too few rounds left a checkpoint: {survivors:?}"
    );
    assert!(
        survivors.windows(2).all(|w| w[0] <= w[1]),
        "a kill rolled the checkpoint back: {survivors:?}"
    );
    assert!(
        survivors.last() > Some(&10),
        "the writer barely progressed: {survivors:?}"
    );

    println!("epochs of the surviving checkpoints: {survivors:?}");
    // Temporary folders that killed writers left are removed by the next save.
    let vm = model()?;
    save_checkpoint(&dir, &vm, None, 0, 0, &History::default(), None)?;
    let leftovers: Vec<_> = std::fs::read_dir(&root)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    assert_eq!(leftovers, ["ckpt"], "temporary folders left behind");
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

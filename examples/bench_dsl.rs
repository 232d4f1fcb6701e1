//! Benchmark: the generated mini-Xception against the same network hand-written in plain
//! candle (`tests/common/hand_xception.rs`) on the same weights, plus the macro's cost: its
//! expansion time on mini-Xception and on the largest zoo models (ResNeXt-50 32x4d,
//! DenseNet-121), and optionally the `cargo check` time of a file holding each zoo model.
//!
//! `cargo run --release --example bench_dsl -- [--iters N] [--warmup N] [--budget-s S]
//! [--expand-iters N] [--sizes 180,64|none] [--cargo-check N]`; `BENCH_ITERS` sets the
//! default of `--iters` (3). `--cargo-check N` (0, off, by default) writes a one-file crate
//! holding the model under `$CARGO_TARGET_DIR/bench_dsl_check` (depending on this
//! workspace's `convnet`), runs `cargo check --release` there once untimed (it checks the
//! dependencies), then times N re-checks after rewriting the file: the macro's expansion
//! plus rustc's checking of the generated code, the cost a user's edit pays.
//! Each figure is the median of up to N timed iterations after `--warmup` (1) untimed ones;
//! the generated and hand-written models are timed alternately, and timing stops early once a
//! measurement has taken `--budget-s` (10) seconds, so the default run fits a few minutes on
//! two cores. The printed lines say how many samples each median is of.
//!
//! Timed, at 180x180 (`convnet::zoo::MiniXception`, dropout 0.5 before the head) and 64x64
//! (the same description, dropout-free), batch 16, on the CPU:
//! - inference: `forward_t(x, false)`;
//! - a training step: `forward_t(x, true)`, binary cross-entropy from logits
//!   (`convnet_runtime::loss`), backward, one Adam step (`convnet_runtime::optim`).
//!
//! Candle's own `max_pool2d` has no backward when kernel != stride (mini-Xception pools 3x3 with
//! stride 2), so for the training step the hand-written model pools with
//! `convnet_runtime::ops::max_pool2d` when candle's cannot backprop; the printed line says so.
//! A failing training step is printed, not fatal.

#[path = "../tests/common/hand_xception.rs"]
mod hand_xception;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use convnet::loss::binary_cross_entropy_with_logits;
use convnet::optim::{Adam, AdamConfig, TrainOptimizer};
use convnet::prelude::*;
use convnet::zoo::MiniXception;
use hand_xception::{HandXception, Pooling};
use std::time::{Duration, Instant};

mod tuning;

convnet::mini_xception!(Xception64, 64);

const BATCH: usize = 16;

struct Options {
    iters: usize,
    warmup: usize,
    expand_iters: usize,
    budget: Duration,
    sizes: Vec<usize>,
    cargo_checks: usize,
}

fn parse_options() -> Options {
    let env_iters = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut o = Options {
        iters: env_iters.unwrap_or(3),
        warmup: 1,
        expand_iters: 200,
        budget: Duration::from_secs(10),
        sizes: vec![180, 64],
        cargo_checks: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || {
            value
                .parse::<usize>()
                .unwrap_or_else(|_| usage(&format!("{flag}: `{value}` is not a number")))
        };
        match flag.as_str() {
            "--iters" => o.iters = number().max(1),
            "--warmup" => o.warmup = number(),
            "--expand-iters" => o.expand_iters = number().max(1),
            "--budget-s" => o.budget = Duration::from_secs(number() as u64),
            "--cargo-check" => o.cargo_checks = number(),
            "--sizes" if value == "none" => o.sizes.clear(),
            "--sizes" => {
                o.sizes = value
                    .split(',')
                    .map(|s| match s.trim().parse() {
                        Ok(n @ (64 | 180)) => n,
                        _ => usage(&format!("--sizes: `{s}` is not 64 or 180")),
                    })
                    .collect()
            }
            _ => usage(&format!("unknown flag `{flag}`")),
        }
    }
    o
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: bench_dsl [--iters N] [--warmup N] [--budget-s S] [--expand-iters N] [--sizes 180,64|none] [--cargo-check N]"
    );
    std::process::exit(2)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median wall time of `iters` calls of `f` after `warmup` untimed ones.
fn time_it(warmup: usize, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    for _ in 0..warmup {
        f()?;
    }
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        samples.push(start.elapsed());
    }
    Ok(median(samples))
}

/// A median and how many samples it is of.
type Timing = Result<(Duration, usize)>;

/// One side of [`time_pair`]: what is timed, its samples, and its error once it failed.
type Side<'a> = (
    &'a mut dyn FnMut() -> Result<()>,
    Vec<Duration>,
    Option<candle_core::Error>,
);

/// Times `a` and `b` alternately (so load from other processes hits both alike): `warmup`
/// untimed calls of each, then up to `o.iters` timed rounds, stopping early once `o.budget`
/// has been spent on timed rounds. A side that fails is dropped and reports its error.
fn time_pair(
    o: &Options,
    mut a: impl FnMut() -> Result<()>,
    mut b: impl FnMut() -> Result<()>,
) -> (Timing, Timing) {
    let mut sides: [Side; 2] = [(&mut a, Vec::new(), None), (&mut b, Vec::new(), None)];
    for _ in 0..o.warmup {
        for (f, _, err) in sides.iter_mut() {
            if err.is_none() {
                if let Err(e) = f() {
                    *err = Some(e);
                }
            }
        }
    }
    let start = Instant::now();
    for _ in 0..o.iters {
        for (f, samples, err) in sides.iter_mut() {
            if err.is_none() {
                let t = Instant::now();
                match f() {
                    Ok(()) => samples.push(t.elapsed()),
                    Err(e) => *err = Some(e),
                }
            }
        }
        if start.elapsed() > o.budget {
            break;
        }
    }
    let [a, b] = sides.map(|(_, samples, err)| match err {
        Some(e) => Err(e),
        None => {
            let n = samples.len();
            Ok((median(samples), n))
        }
    });
    (a, b)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio_line(what: &str, generated: &Timing, hand: &Timing, note: &str) {
    let show = |r: &Timing| match r {
        Ok((d, n)) => format!("{:.1} ms (median of {n})", ms(*d)),
        // The first line only: candle appends a backtrace when RUST_BACKTRACE is set.
        Err(e) => format!("failed ({})", e.to_string().lines().next().unwrap_or("")),
    };
    let ratio = match (generated, hand) {
        (Ok((g, _)), Ok((h, _))) => format!(", ratio {:.2}", g.as_secs_f64() / h.as_secs_f64()),
        _ => String::new(),
    };
    println!(
        "{what}: generated {}, hand-written {}{ratio}{note}",
        show(generated),
        show(hand)
    );
}

/// Whether candle's own 3x3 stride-2 max pooling has a backward.
fn candle_pool_backprops() -> bool {
    let probe = || -> Result<()> {
        let v = Var::ones((1, 1, 5, 5), DType::F32, &Device::Cpu)?;
        v.as_tensor()
            .max_pool2d_with_stride(3, 2)?
            .sum_all()?
            .backward()?;
        Ok(())
    };
    probe().is_ok()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// One training step: forward in training mode, BCE from logits, backward, Adam.
fn train_step(
    forward: &dyn Fn(&Tensor, bool) -> Result<Tensor>,
    opt: &mut Adam,
    x: &Tensor,
    y: &Tensor,
) -> Result<()> {
    let logits = forward(x, true)?;
    let loss = binary_cross_entropy_with_logits(&logits, y)?;
    let grads = loss.backward()?;
    opt.apply(&grads)
}

fn bench_size<M: Network>(size: usize, dropout: Option<f32>, o: &Options) -> Result<()> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let generated = M::new(vb.clone())?;
    let mut hand = HandXception::new(vb.clone())?;
    if let Some(rate) = dropout {
        hand = hand.with_dropout(rate);
    }
    let x = Tensor::rand(0f32, 255f32, (BATCH, 3, size, size), &dev)?;
    let y = Tensor::rand(0f32, 1f32, BATCH, &dev)?
        .ge(0.5)?
        .to_dtype(DType::U32)?;
    let tag = format!("{size}x{size} b{BATCH}");

    let d = max_abs_diff(
        &generated.forward_t(&x, false)?,
        &hand.forward_t(&x, false)?,
    )?;
    if d > 1e-4 {
        println!("WARNING {tag}: generated and hand-written outputs differ by {d}");
    }
    let (fwd_g, fwd_h) = time_pair(
        o,
        || generated.forward_t(&x, false).map(drop),
        || hand.forward_t(&x, false).map(drop),
    );
    ratio_line(
        &format!("forward {tag}"),
        &fwd_g,
        &fwd_h,
        &format!(" (eval mode; outputs agree to {d:.1e})"),
    );

    // The same weights for both: two Adam instances over one VarMap (each updates the shared
    // variables; only the time matters here).
    let mut opt_g = Adam::from_varmap(&varmap, AdamConfig::default());
    let mut opt_h = Adam::from_varmap(&varmap, AdamConfig::default());
    let note = if candle_pool_backprops() {
        " (hand-written pools with candle's max_pool2d)".to_string()
    } else {
        hand = hand.with_pooling(Pooling::Runtime);
        " (hand-written pools with convnet_runtime::ops::max_pool2d: candle's max_pool2d has \
         no backward for kernel 3 != stride 2)"
            .to_string()
    };
    let gen_forward = |x: &Tensor, train: bool| generated.forward_t(x, train);
    let hand_forward = |x: &Tensor, train: bool| hand.forward_t(x, train);
    let (train_g, train_h) = time_pair(
        o,
        || train_step(&gen_forward, &mut opt_g, &x, &y),
        || train_step(&hand_forward, &mut opt_h, &x, &y),
    );
    ratio_line(&format!("train step {tag}"), &train_g, &train_h, &note);
    Ok(())
}

/// The mini-Xception description at 180x180, instantiated from the `mini_xception!` template
/// in `src/zoo/mod.rs` (its `convnet!` body with the macro's parameters filled in), so the timed
/// tokens are exactly what the zoo expands.
fn mini_xception_description() -> String {
    let zoo = include_str!("../src/zoo/mod.rs");
    let marker = "$crate::convnet! {";
    let open = zoo
        .find(marker)
        .expect("src/zoo/mod.rs has the mini_xception! template")
        + marker.len();
    let mut depth = 1;
    for (i, ch) in zoo[open..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    let text = zoo[open..open + i]
                        .replace("$(#[$attr])*", "/// Mini-Xception at 180x180.")
                        .replace("$name", "MiniXception")
                        .replace("$size", "180")
                        .replace("$momentum", "0.01");
                    assert!(!text.contains('$'), "unfilled template parameter in {text}");
                    return text;
                }
            }
            _ => {}
        }
    }
    panic!("the mini_xception! template is not closed in src/zoo/mod.rs")
}

/// Token trees, counting inside groups.
fn count_tokens(tokens: proc_macro2::TokenStream) -> usize {
    tokens
        .into_iter()
        .map(|t| match t {
            proc_macro2::TokenTree::Group(g) => 1 + count_tokens(g.stream()),
            _ => 1,
        })
        .sum()
}

/// The bodies of the `convnet! { ... }`s of a zoo source file, as one description: a block
/// one invocation imports from an earlier one of the file (`use self::a as b;`) is defined
/// under its imported name instead (the import itself needs the compiler's macro expansion).
fn zoo_description(file: &str, source: &str) -> String {
    let marker = "convnet! {";
    let mut bodies = String::new();
    let mut rest = source;
    while let Some(at) = rest.find(marker) {
        let open = at + marker.len();
        let mut depth = 1;
        let close = rest[open..]
            .char_indices()
            .find_map(|(i, ch)| {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(open + i)
            })
            .unwrap_or_else(|| panic!("a `convnet!` of {file} is not closed"));
        bodies.push_str(&rest[open..close]);
        bodies.push('\n');
        rest = &rest[close..];
    }
    assert!(!bodies.is_empty(), "{file} has no `convnet! {{`");
    let mut description = String::new();
    let mut renames = Vec::new();
    for line in bodies.lines() {
        match line.trim().strip_prefix("use self::") {
            Some(import) => {
                let import = import.trim_end_matches(';');
                if let Some((from, to)) = import.split_once(" as ") {
                    renames.push((format!("block {from}("), format!("block {to}(")));
                }
            }
            None => {
                description.push_str(line);
                description.push('\n');
            }
        }
    }
    for (from, to) in renames {
        description = description.replace(&from, &to);
    }
    description
}

/// The largest zoo models: (name, `convnet!` body).
fn largest_zoo_models() -> [(&'static str, String); 2] {
    [
        (
            "ResNeXt-50 32x4d",
            zoo_description("src/zoo/resnext.rs", include_str!("../src/zoo/resnext.rs")),
        ),
        (
            "DenseNet-121",
            zoo_description(
                "src/zoo/densenet.rs",
                include_str!("../src/zoo/densenet.rs"),
            ),
        ),
    ]
}

/// CPU time this thread has run, from Linux's `/proc/thread-self/schedstat` (`None`
/// elsewhere): unlike wall time, it does not grow when other processes load the machine.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Times the expansion of `text` (a `convnet!` body) and prints one line: the median wall
/// time and, where the OS reports it, the mean CPU time.
fn bench_expand(name: &str, text: &str, iters: usize) {
    let tokens: proc_macro2::TokenStream = text.parse().expect("the description tokenizes");
    let out = convnet_dsl::expand(tokens.clone());
    let out_text = out.to_string();
    if out_text.contains("compile_error") {
        println!("WARNING: expanding {name} produced compile errors: {out_text}");
    }
    let expand = time_it(iters.min(10), iters, || {
        std::hint::black_box(convnet_dsl::expand(std::hint::black_box(tokens.clone())));
        Ok(())
    })
    .expect("expansion cannot fail");
    let parse = time_it(iters.min(10), iters, || {
        let t: proc_macro2::TokenStream = text.parse().expect("the description tokenizes");
        std::hint::black_box(t);
        Ok(())
    })
    .expect("tokenizing cannot fail");
    let cpu = thread_cpu_time().and_then(|start| {
        for _ in 0..iters {
            std::hint::black_box(convnet_dsl::expand(std::hint::black_box(tokens.clone())));
        }
        Some((thread_cpu_time()? - start) / iters as u32)
    });
    let cpu = cpu.map_or(String::new(), |c| format!(", CPU time {:.3} ms", ms(c)));
    println!(
        "macro expansion {name}: {:.3} ms{cpu} (median of {iters}; {} input tokens -> {} output \
         chars; tokenizing the text alone {:.3} ms)",
        ms(expand),
        count_tokens(tokens),
        out_text.len(),
        ms(parse)
    );
}

/// Runs `cargo check --release` in `dir`; its wall time, or why it failed.
fn cargo_check(dir: &std::path::Path) -> std::result::Result<Duration, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let start = Instant::now();
    let out = std::process::Command::new(cargo)
        .args(["check", "--release", "--quiet"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(start.elapsed())
}

/// Times `cargo check --release` of a one-file crate holding each of `models` (a warm-up
/// check first, untimed), `checks` times each, and prints one line per model.
fn bench_cargo_check(models: &[(&'static str, String)], checks: usize) -> std::io::Result<()> {
    let root = env!("CARGO_MANIFEST_DIR");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{root}/target"));
    let dir = std::path::Path::new(&target).join("bench_dsl_check");
    std::fs::create_dir_all(dir.join("src"))?;
    // Its own workspace, with this workspace's patched candle-core (as `convnet` is built).
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bench_dsl_check\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nconvnet = {{ path = {root:?} }}\n\n[workspace]\n\n\
             [patch.crates-io]\ncandle-core = {{ path = \"{root}/vendor/candle-core\" }}\n"
        ),
    )?;
    // This workspace's lock file: the same dependency versions, and nothing to resolve online.
    std::fs::copy(format!("{root}/Cargo.lock"), dir.join("Cargo.lock"))?;
    let lib = dir.join("src/lib.rs");
    for (name, body) in models {
        let file = |n: usize| {
            format!("//! {name} (edit {n}).\n\nuse convnet::convnet;\n\nconvnet! {{{body}}}\n")
        };
        std::fs::write(&lib, file(0))?;
        if let Err(e) = cargo_check(&dir) {
            println!("cargo check {name}: failed: {e}");
            continue;
        }
        let mut samples = Vec::with_capacity(checks);
        for n in 1..=checks {
            std::fs::write(&lib, file(n))?;
            match cargo_check(&dir) {
                Ok(t) => samples.push(t),
                Err(e) => {
                    println!("cargo check {name}: failed: {e}");
                    break;
                }
            }
        }
        if !samples.is_empty() {
            let n = samples.len();
            println!(
                "cargo check --release of a file holding {name}: {:.2} s (median of {n} re-checks \
                 after an edit, dependencies already checked)",
                median(samples).as_secs_f64()
            );
        }
    }
    Ok(())
}

fn main() {
    tuning::apply();
    let o = parse_options();
    println!(
        "bench_dsl: candle CPU, {} threads, median of {} iterations after {} warm-up",
        candle_core::utils::get_num_threads(),
        o.iters,
        o.warmup
    );
    bench_expand("MiniXception", &mini_xception_description(), o.expand_iters);
    let zoo = largest_zoo_models();
    for (name, text) in &zoo {
        bench_expand(name, text, o.expand_iters);
    }
    if o.cargo_checks > 0 {
        if let Err(e) = bench_cargo_check(&zoo, o.cargo_checks) {
            println!("cargo check benchmark failed: {e}");
        }
    }
    for &size in &o.sizes {
        let result = match size {
            180 => bench_size::<MiniXception>(180, Some(0.5), &o),
            _ => bench_size::<Xception64>(64, Some(0.5), &o),
        };
        if let Err(e) = result {
            println!("{size}x{size}: benchmark failed: {e}");
        }
    }
}

//! Writes, for each model, its ONNX export and our forward pass on a fixed input, for
//! `scripts/onnx_check.py` to compare with onnxruntime (`docs/onnx.md`).
//!
//! ```text
//! cargo run --release --example onnx_check -- --out target/onnx_check [--batch 3] [MODEL...]
//! python scripts/onnx_check.py target/onnx_check
//! ```
//!
//! `--checkpoint DIR` adds a checkpoint of the main job (mini-Xception with its trained
//! weights and batch-norm statistics) as `checkpoint`.
//!
//! MODEL is `every_layer` (a model using every layer of the catalog, merges, skips,
//! conditionals, loops, labelled groups, nested models and both fused patterns) or a zoo
//! model: mini_xception, vgg16, resnet18, resnet50, resnext50_32x4d, densenet121, googlenet,
//! efficientnet_b0, mobilenet_v3_large, unet; by default all of them. Each model gets
//! `NAME.onnx`, `NAME.input.npy` (uniform in [-1, 1]) and `NAME.output.npy` (ours, in
//! inference mode). The parameters are the seeded initialisation with every 1-d parameter
//! (norm weights and biases, running statistics, biases, layer scales) moved off its initial
//! value, so batch-norm statistics and affine parameters all matter.

use candle_core::{DType, Device, Result, Tensor};
use clap::Parser;
use convnet::checkpoint::load_checkpoint_weights;
use convnet::init::seeded_var_builder;
use convnet::onnx::{export_onnx, OnnxOptions};
use convnet::prelude::*;
use convnet::train::load_state;
use convnet::zoo::{
    DenseNet121, EfficientNetB0, GoogLeNet, MiniXception, MobileNetV3Large, ResNeXt50, ResNet18,
    ResNet50, UNet, Vgg16,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod models;
use models::with_mini_xception;

convnet! {
    /// A stem from another invocation, used as `model(OnnxStem, ...)`.
    pub OnnxStem(3, 33, 33) -> (16, 17, 17) {
        conv2d(16, 3, stride = 2, padding = same), batch_norm, relu,
    }
}

convnet! {
    /// Squeeze-excitation: a gate of H = W = 1 broadcast by `multiply`.
    block gate(channels, squeeze) {
        multiply {
            identity,
            gate: {
                global_avg_pool2d(keepdims = true),
                conv2d(squeeze, 1), relu, conv2d(channels, 1), hard_sigmoid,
            },
        }
    }

    /// A residual unit: identity when the shape stays, else an automatic projection.
    block unit(c, stride = 1) {
        if stride == 1 && c == in_channels {
            residual { conv2d(c, 3, padding = same), relu6 }
        } else {
            residual(project = auto) { conv2d(c, 3, stride = stride, padding = 1), silu }
        }
    }

    /// A head from this invocation, used by name.
    pub OnnxTail(32, 5, 5) -> (8) { global_max_pool2d, dropout(0.3), linear(8) }

    /// Every layer of the catalog, with merges, skips, conditionals, loops, labelled
    /// groups, nested models, and both fused patterns (batch norm into a depthwise and a
    /// separable convolution; a max pool into a separable convolution).
    pub EveryLayer(3, 33, 33) -> (5) {
        rescale(0.5, offset = -0.25),
        model(OnnxStem, output = (16, 17, 17)),
        separable_conv2d(24, 3, padding = same),
        batch_norm, relu,
        depthwise_conv2d(3, padding = same, multiplier = 2),        // bn + relu fused in
        batch_norm,
        separable_conv2d(32, 3, padding = same, bias = false),      // bn fused in ...
        max_pool2d(3, stride = 2, padding = same),                  // ... and the pool: (32, 9, 9)
        gate(32, 8),
        for stride in [1, 2] { unit(32, stride) }                   // (32, 5, 5)
        upsample2d(2),                                              // (32, 10, 10)
        conv_transpose2d(16, 3, stride = 2, padding = 1, output_padding = 1), // (16, 20, 20)
        upsample2d(2, mode = bilinear),                             // (16, 40, 40)
        avg_pool2d(3, stride = 2, padding = 1, ceil_mode = true, count_include_pad = true), // 21
        max_pool2d(2, ceil_mode = true),                            // (16, 11, 11)
        avg_pool2d(3, stride = 1, padding = same),
        avg_pool2d(2, stride = 1, padding = (0, 1, 0, 1)),
        zero_pad2d((1, 2, 0, 3)),                                   // (16, 14, 14)
        crop2d((2, 1, 1, 0)),                                       // (16, 11, 13)
        center_crop(9, 10),                                         // (16, 9, 10)
        normed: layer_norm2d,
        group_norm(4),
        layer_scale(0.5),
        drop_path(0.2),
        concat { identity, @normed, { channel_slice(0, 8), gelu } } // (40, 9, 10)
        channel_shuffle(4),
        channel_linear(24),
        add { tanh, { leaky_relu(0.1) }, sigmoid, softmax }
        hard_swish,
        let wide = if in_channels > 16 { 32 } else { 16 },
        conv2d(wide, (3, 2), stride = 2, groups = 4, padding = same), // (32, 5, 5)
        conv2d(32, 3, dilation = 2, padding = 2, bias = false),
        conv2d(32, 2, dilation = 3, padding = same),                // same, dilated: pads 1 before, 2 after
        upsample2d((2, 3)),                                         // (32, 10, 15)
        upsample2d((3, 2), mode = bilinear),                        // (32, 30, 30)
        max_pool2d((6, 6)),                                         // (32, 5, 5)
        reshape((8, 20, 5)), reshape((32, 5, 5)),
        assert_shape(32, 5, 5),
        head: concat {
            features: { 0: flatten, 1: linear(16, bias = false), 2: batch_norm },
            OnnxTail,
            global_avg_pool2d,
        }
        linear(5),
    }
}

#[derive(Parser, Debug)]
#[command(
    about = "Write each model's ONNX export, an input and our output for scripts/onnx_check.py"
)]
struct Args {
    /// The folder to write into (created).
    #[arg(long)]
    out: PathBuf,
    /// The batch size of the input (the export's batch is dynamic).
    #[arg(long, default_value_t = 3)]
    batch: usize,
    /// Also a checkpoint of the main job (trained weights), written as `checkpoint`.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The models (every_layer or zoo names); all when none is given (none with
    /// --checkpoint).
    models: Vec<String>,
}

/// All the models this program knows.
const MODELS: &[&str] = &[
    "every_layer",
    "mini_xception",
    "vgg16",
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    "densenet121",
    "googlenet",
    "efficientnet_b0",
    "mobilenet_v3_large",
    "unet",
];

/// A deterministic value in [-1, 1) from `seed` and `i` (splitmix64).
fn uniform(seed: u64, i: u64) -> f32 {
    let mut z = seed
        .wrapping_add(i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 31)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 29;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Moves every 1-d parameter off its initial value: running variances into [0.5, 1.5),
/// everything else by up to +-0.2.
fn perturb(varmap: &VarMap) -> Result<()> {
    for (name, var) in varmap.data().lock().expect("VarMap lock").iter() {
        let t = var.as_tensor();
        if t.rank() != 1 {
            continue;
        }
        let seed = name_seed(name);
        let noise: Vec<f32> = (0..t.elem_count() as u64)
            .map(|i| uniform(seed, i))
            .collect();
        let noise = Tensor::from_vec(noise, t.dims(), t.device())?;
        let new = if name.ends_with("running_var") {
            ((noise * 0.5)? + 1.0)?
        } else {
            (t + (noise * 0.2)?)?
        };
        var.set(&new)?;
    }
    Ok(())
}

/// A `.npy` file (version 1, little-endian float32, C order) of `t`.
fn write_npy(t: &Tensor, path: &Path) -> Result<()> {
    let dims: Vec<String> = t.dims().iter().map(|d| format!("{d},")).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}",
        dims.join(" ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in t.flatten_all()?.to_vec1::<f32>()? {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| convnet::error::Error::io("write", path, e).into())
}

/// Builds `M` with perturbed seeded parameters, runs it on a fixed input of `batch`
/// examples, and writes the export, the input and the output under `out`.
fn write_case<M: Network>(name: &str, out: &Path, batch: usize) -> Result<()> {
    let varmap = VarMap::new();
    let model = M::new(seeded_var_builder(&varmap, 7, DType::F32, &Device::Cpu))?;
    perturb(&varmap)?;
    write_outputs(&model, &varmap, name, out, batch)
}

/// [`write_case`] with the trained weights of a checkpoint of the main job, as `checkpoint`.
fn write_checkpoint<M: Network>(dir: &Path, out: &Path, batch: usize) -> Result<()> {
    let varmap = VarMap::new();
    let model = M::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    load_checkpoint_weights(&varmap, dir)?;
    write_outputs(&model, &varmap, "checkpoint", out, batch)
}

/// Runs `model` on a fixed input of `batch` examples and writes the export, the input and
/// the output under `out` as `name.*`.
fn write_outputs<M: Network>(
    model: &M,
    varmap: &VarMap,
    name: &str,
    out: &Path,
    batch: usize,
) -> Result<()> {
    let mut dims = vec![batch];
    dims.extend_from_slice(M::INPUT_SHAPE);
    let n: usize = dims.iter().product();
    let x: Vec<f32> = (0..n as u64).map(|i| uniform(name_seed(name), i)).collect();
    let x = Tensor::from_vec(x, dims, &Device::Cpu)?;
    let start = Instant::now();
    let y = no_grad(|| model.forward_t(&x, false))?;
    let forward = start.elapsed();
    let bytes = export_onnx::<M>(
        varmap,
        out.join(format!("{name}.onnx")),
        &OnnxOptions::default(),
    )?;
    write_npy(&x, &out.join(format!("{name}.input.npy")))?;
    write_npy(&y, &out.join(format!("{name}.output.npy")))?;
    println!(
        "{name}: {} -> {:?}, forward {:.2}s, {:.1} MB of ONNX",
        M::NAME,
        y.dims(),
        forward.as_secs_f64(),
        bytes as f64 / 1e6
    );
    Ok(())
}

fn write_model(name: &str, out: &Path, batch: usize) -> Result<()> {
    match name {
        "every_layer" => write_case::<EveryLayer>(name, out, batch),
        "mini_xception" => write_case::<MiniXception>(name, out, batch),
        "vgg16" => write_case::<Vgg16>(name, out, batch),
        "resnet18" => write_case::<ResNet18>(name, out, batch),
        "resnet50" => write_case::<ResNet50>(name, out, batch),
        "resnext50_32x4d" => write_case::<ResNeXt50>(name, out, batch),
        "densenet121" => write_case::<DenseNet121>(name, out, batch),
        "googlenet" => write_case::<GoogLeNet>(name, out, batch),
        "efficientnet_b0" => write_case::<EfficientNetB0>(name, out, batch),
        "mobilenet_v3_large" => write_case::<MobileNetV3Large>(name, out, batch),
        "unet" => write_case::<UNet>(name, out, batch),
        other => Err(convnet::error::Error::invalid(
            "model",
            format!("no model `{other}`; choose from {}", MODELS.join(", ")),
        )
        .into()),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)
        .map_err(|e| convnet::error::Error::io("create folder", &args.out, e))?;
    if let Some(dir) = &args.checkpoint {
        let info = load_state(dir)?
            .model
            .ok_or_else(|| convnet::error::Error::checkpoint(dir, "records no model"))?;
        let size = match info.input_shape[..] {
            [3, h, w] if h == w && info.name.starts_with("MiniXception") => h,
            _ => {
                return Err(convnet::error::Error::checkpoint(
                    dir,
                    format!(
                        "holds model {}; this program knows mini-Xception",
                        info.name
                    ),
                )
                .into())
            }
        };
        with_mini_xception!(size, write_checkpoint(dir, &args.out, args.batch))?;
        if args.models.is_empty() {
            return Ok(());
        }
    }
    let models: Vec<String> = if args.models.is_empty() {
        MODELS.iter().map(|m| m.to_string()).collect()
    } else {
        args.models.clone()
    };
    for name in &models {
        write_model(name, &args.out, args.batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet::onnx::{decode_model, encode_model, onnx_graph, onnx_model};
    use std::collections::BTreeSet;

    fn kinds(summaries: &[convnet::model::Summary]) -> BTreeSet<String> {
        summaries
            .iter()
            .flat_map(|s| s.rows.iter().map(|r| r.kind.clone()))
            .collect()
    }

    /// The every-layer model uses every plain layer of the catalog, so the comparison with
    /// onnxruntime covers each layer's ONNX form: a new layer fails here until it is added.
    #[test]
    fn every_layer_uses_every_catalog_layer() {
        let used = kinds(&[
            EveryLayer::summary(),
            OnnxStem::summary(),
            OnnxTail::summary(),
        ]);
        let missing: Vec<&str> = convnet_dsl::catalog::LAYERS
            .iter()
            .filter(|l| l.build.is_some() && !used.contains(l.name))
            .map(|l| l.name)
            .collect();
        assert!(missing.is_empty(), "EveryLayer lacks {missing:?}");
    }

    fn var_names(varmap: &VarMap) -> BTreeSet<String> {
        varmap.data().lock().unwrap().keys().cloned().collect()
    }

    /// The export decodes back, with a symbolic batch on input and output, every parameter
    /// of the model as an initializer under its variable path, and the fused layers as
    /// their parts.
    #[test]
    fn every_layer_export_decodes_with_all_parameters_and_a_dynamic_batch() {
        let varmap = VarMap::new();
        EveryLayer::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        let bytes =
            encode_model(&onnx_model::<EveryLayer>(&varmap, &OnnxOptions::default()).unwrap());
        let model = decode_model(&bytes).unwrap();
        assert_eq!(model.opset_import[0].version, convnet::onnx::OPSET);
        let graph = model.graph.unwrap();
        for io in [&graph.input[0], &graph.output[0]] {
            let ty = io.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
            let dim = &ty.shape.as_ref().unwrap().dim;
            assert_eq!(dim[0].dim_param.as_deref(), Some("batch"), "{}", io.name);
        }
        let params: BTreeSet<String> = graph
            .initializer
            .iter()
            .filter(|t| !t.name.contains('/'))
            .map(|t| t.name.clone())
            .collect();
        assert_eq!(params, var_names(&varmap));
        let count = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
        let rows = |kind: &str| {
            [EveryLayer::summary(), OnnxStem::summary()]
                .iter()
                .flat_map(|s| s.rows.clone())
                .filter(|r| r.kind == kind)
                .count()
        };
        // Every batch norm is a node (those fused into convolutions too), every relu too.
        assert_eq!(count("BatchNormalization"), rows("batch_norm"));
        assert_eq!(count("MaxPool"), rows("max_pool2d"));
        // The separable convolution into which a batch norm and a max pool are fused is
        // exported as its depthwise and pointwise convolutions.
        let separable: Vec<String> = EveryLayer::summary()
            .rows
            .into_iter()
            .filter(|r| r.kind == "separable_conv2d")
            .map(|r| r.name)
            .collect();
        assert_eq!(separable.len(), 2);
        for name in &separable {
            for part in ["depthwise", "pointwise"] {
                let prefix = format!("{name}.{part}/");
                assert!(
                    graph.node.iter().any(|n| n.name.starts_with(&prefix)),
                    "no node {prefix}*"
                );
            }
        }
    }

    /// A VarMap without the model's parameters is an error naming the first one missing,
    /// and no file is written.
    #[test]
    fn a_varmap_without_the_parameters_is_an_error() {
        let dir = std::env::temp_dir().join(format!("convnet-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.onnx");
        let err = export_onnx::<EveryLayer>(&VarMap::new(), &path, &OnnxOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("EveryLayer reads parameter `"), "{err}");
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A path that cannot be written is an error naming it, and leaves nothing behind; a
    /// good export replaces an old file whole.
    #[test]
    fn an_unwritable_path_is_an_error_and_a_good_export_replaces_the_file() {
        let varmap = VarMap::new();
        EveryLayer::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        let dir = std::env::temp_dir().join(format!("convnet-onnx-io-{}", std::process::id()));
        let missing = dir.join("no-such-folder").join("m.onnx");
        let err = export_onnx::<EveryLayer>(&varmap, &missing, &OnnxOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no-such-folder"), "{err}");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.onnx");
        std::fs::write(&path, b"old").unwrap();
        let bytes = export_onnx::<EveryLayer>(&varmap, &path, &OnnxOptions::default()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, bytes);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary files left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every zoo model's graph reads exactly its parameters.
    #[test]
    fn zoo_graphs_read_every_parameter() {
        fn check<M: Network>() {
            let varmap = VarMap::new();
            M::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
            let (graph, _) = onnx_graph::<M>().unwrap();
            let read: BTreeSet<String> = graph.params().iter().cloned().collect();
            assert_eq!(read, var_names(&varmap), "{}", M::NAME);
        }
        check::<MiniXception>();
        check::<ResNet18>();
        check::<DenseNet121>();
        check::<GoogLeNet>();
        check::<EfficientNetB0>();
        check::<MobileNetV3Large>();
        check::<UNet>();
    }
}

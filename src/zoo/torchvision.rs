//! torchvision's counterparts of the zoo models. Each zoo model names its variables as
//! torchvision's state dict does (`layer2.0.downsample.0.weight`, `features.3.block.2.fc1.bias`):
//! the names are written in the description itself, with labels, `sequential` groups and `_:`
//! layers that open no scope (see the grammar's "Naming the layers PyTorch's way"). So the zoo
//! loads torchvision's weight files (`weights=` downloads) **by name**, strictly, and exports
//! weights torchvision loads with `strict=True`; nothing is paired by order.
//! `tests/interop_torchvision.rs` checks every zoo model's variables against torchvision's keys
//! and shapes (`tests/fixtures/torchvision/*.keys`, written by `scripts/interop_fixtures.py
//! keys`), name for name.
//!
//! ```no_run
//! use convnet::prelude::*;
//! use convnet::interop::{load_pytorch, LoadOptions, ParamList};
//! use convnet::zoo::{torchvision::Torchvision, ResNet18};
//! # fn main() -> candle_core::Result<()> {
//! let varmap = VarMap::new();
//! let model = ResNet18::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
//! let params = ParamList::of::<ResNet18>(&varmap)?;
//! let report = load_pytorch(&varmap, &params, "resnet18-f37072fd.pth", &ResNet18::naming()?, &LoadOptions::default())?;
//! println!("{report}");
//! # let _ = model; Ok(()) }
//! ```

use super::{
    DenseNet121, EfficientNetB0, GoogLeNet, MobileNetV3Large, ResNeXt50, ResNet18, ResNet50, Vgg16,
};
use convnet_runtime::interop::Naming;
use convnet_runtime::model::Network;

/// A zoo model with a torchvision counterpart, whose variables are named as torchvision's
/// state-dict keys.
pub trait Torchvision: Network {
    /// torchvision's function name, e.g. `resnet18`.
    const TORCHVISION: &'static str;
    /// Keys of torchvision's published files that the zoo model has no variable for (regexes).
    const IGNORED: &'static [&'static str] = &[];

    /// torchvision's naming of this model's variables: by name (they are torchvision's keys),
    /// with the keys in [`IGNORED`](Torchvision::IGNORED) left out.
    fn naming() -> candle_core::Result<Naming> {
        let mut naming = Naming::by_name();
        for pattern in Self::IGNORED {
            naming = naming.ignore(pattern)?;
        }
        Ok(naming)
    }
}

macro_rules! torchvision {
    ($($model:ty => $name:literal $(, ignore $ignored:expr)?;)*) => {$(
        impl Torchvision for $model {
            const TORCHVISION: &'static str = $name;
            $(const IGNORED: &'static [&'static str] = $ignored;)?
        }
    )*};
}

torchvision! {
    ResNet18 => "resnet18";
    ResNet50 => "resnet50";
    ResNeXt50 => "resnext50_32x4d";
    DenseNet121 => "densenet121";
    // The published GoogLeNet weights hold the auxiliary classifiers, which the zoo model
    // (like torchvision's in eval mode) does not have.
    GoogLeNet => "googlenet", ignore &[r"^aux[12]\."];
    EfficientNetB0 => "efficientnet_b0";
    MobileNetV3Large => "mobilenet_v3_large";
    Vgg16 => "vgg16";
}

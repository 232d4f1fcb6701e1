//! torchvision's state-dict names for the zoo models, so the zoo loads torchvision's weight
//! files (`weights=` downloads) as they are and exports weights torchvision loads with
//! `strict=True`.
//!
//! The names are derived, not hand-written: `torchvision/*.keys` lists each torchvision
//! model's keys and shapes in registration order (written by `scripts/interop_fixtures.py
//! keys`), and [`Torchvision::naming`] pairs them in order with the zoo model's variables in
//! forward order ([`Naming::key_list`]), checking every shape. Until the macro can name
//! layers torch-style itself, this key list is the one per-model fact.
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
use convnet_runtime::interop::{Naming, ParamList};
use convnet_runtime::model::Network;

/// A zoo model with a torchvision counterpart.
pub trait Torchvision: Network {
    /// torchvision's function name, e.g. `resnet18`.
    const TORCHVISION: &'static str;
    /// torchvision's state-dict keys and shapes, in order (`name d1,d2,...` per line).
    const KEYS: &'static str;
    /// Keys of torchvision's published files that the zoo model has no variable for (regexes).
    const IGNORED: &'static [&'static str] = &[];

    /// torchvision's naming of this model's variables.
    fn naming() -> candle_core::Result<Naming> {
        let mut naming = Naming::key_list(ParamList::parse_keys(Self::KEYS)?);
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
            const KEYS: &'static str = include_str!(concat!("torchvision/", $name, ".keys"));
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

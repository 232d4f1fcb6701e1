//! Prints a zoo model's Keras-style summary.
//!
//! `cargo run --release --example summary -- mini_xception` (or vgg16, resnet18, resnet50,
//! resnext50_32x4d, densenet121, googlenet, efficientnet_b0, mobilenet_v3_large, unet,
//! residual_projection, residual_pooling).

use convnet::model::Summary;
use convnet::zoo::{
    DenseNet121, EfficientNetB0, GoogLeNet, MiniXception, MobileNetV3Large, ResNeXt50, ResNet18,
    ResNet50, ResidualPooling, ResidualProjection, UNet, Vgg16,
};

fn main() {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mini_xception".into());
    let summary: Summary = match name.as_str() {
        "mini_xception" => MiniXception::summary(),
        "vgg16" => Vgg16::summary(),
        "resnet18" => ResNet18::summary(),
        "resnet50" => ResNet50::summary(),
        "residual_projection" => ResidualProjection::summary(),
        "residual_pooling" => ResidualPooling::summary(),
        "efficientnet_b0" => EfficientNetB0::summary(),
        "mobilenet_v3_large" => MobileNetV3Large::summary(),
        "resnext50_32x4d" => ResNeXt50::summary(),
        "densenet121" => DenseNet121::summary(),
        "googlenet" => GoogLeNet::summary(),
        "unet" => UNet::summary(),
        other => {
            eprintln!(
                "unknown model `{other}`; choose mini_xception, vgg16, resnet18, resnet50, resnext50_32x4d, densenet121, googlenet, efficientnet_b0, mobilenet_v3_large, unet, residual_projection or residual_pooling"
            );
            std::process::exit(2);
        }
    };
    println!("{summary}");
}

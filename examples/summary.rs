//! Prints a zoo model's Keras-style summary.
//!
//! `cargo run --release --example summary -- mini_xception` (or vgg16, resnet18, resnet50,
//! residual_projection, residual_pooling).

use convnet::model::Summary;
use convnet::zoo::{MiniXception, ResNet18, ResNet50, ResidualPooling, ResidualProjection, Vgg16};

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
        "densenet121" => convnet::zoo::DenseNet121::summary(),
        "googlenet" => convnet::zoo::GoogLeNet::summary(),
        "unet" => convnet::zoo::UNet::summary(),
        other => {
            eprintln!(
                "unknown model `{other}`; choose mini_xception, vgg16, resnet18, resnet50, residual_projection or residual_pooling"
            );
            std::process::exit(2);
        }
    };
    println!("{summary}");
}

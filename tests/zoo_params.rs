//! The zoo's compile-time parameter counts reproduce Keras and torchvision.

use convnet::zoo::{MiniXception, ResNet18, ResNet50, ResidualPooling, ResidualProjection, Vgg16};

#[test]
fn mini_xception_matches_keras() {
    assert_eq!(MiniXception::TOTAL_PARAMS, 721_857);
    assert_eq!(MiniXception::TRAINABLE_PARAMS, 718_849);
    assert_eq!(MiniXception::NON_TRAINABLE_PARAMS, 3_008);
    assert_eq!(MiniXception::INPUT_SHAPE, &[3, 180, 180]);
    assert_eq!(MiniXception::OUTPUT_SHAPE, &[1]);
}

#[test]
fn vgg16_matches_keras() {
    assert_eq!(Vgg16::TOTAL_PARAMS, 138_357_544);
    assert_eq!(Vgg16::NON_TRAINABLE_PARAMS, 0);
}

#[test]
fn resnets_match_torchvision() {
    assert_eq!(ResNet18::TRAINABLE_PARAMS, 11_689_512);
    assert_eq!(ResNet50::TRAINABLE_PARAMS, 25_557_032);
}

#[test]
fn seed_examples_have_expected_shapes_and_counts() {
    // conv 3x3x3x32+32 = 896; conv 3x3x32x64+64 = 18,496; projection 32x64+64 = 2,112.
    assert_eq!(ResidualProjection::TOTAL_PARAMS, 896 + 18_496 + 2_112);
    assert_eq!(ResidualProjection::OUTPUT_SHAPE, &[64, 30, 30]);
    assert_eq!(ResidualPooling::TOTAL_PARAMS, 896 + 18_496 + 2_112);
    assert_eq!(ResidualPooling::OUTPUT_SHAPE, &[64, 15, 15]);
}

#[test]
fn flops_count_multiply_adds_twice() {
    // conv1: 30x30 outputs x 32 filters x 27 taps; conv2: 30x30 x 64 x 288; 1x1 projection: 30x30 x 64 x 32.
    let expected = 2 * (30 * 30 * 32 * 27 + 30 * 30 * 64 * 288 + 30 * 30 * 64 * 32);
    assert_eq!(ResidualProjection::FLOPS, expected as u64);
}

#[test]
fn resnext50_matches_torchvision() {
    assert_eq!(convnet::zoo::ResNeXt50::TRAINABLE_PARAMS, 25_028_904);
    assert_eq!(convnet::zoo::ResNeXt50::INPUT_SHAPE, &[3, 224, 224]);
    assert_eq!(convnet::zoo::ResNeXt50::OUTPUT_SHAPE, &[1000]);
}

#[test]
fn efficientnet_b0_matches_torchvision() {
    assert_eq!(convnet::zoo::EfficientNetB0::TRAINABLE_PARAMS, 5_288_548);
    assert_eq!(convnet::zoo::EfficientNetB0::INPUT_SHAPE, &[3, 224, 224]);
    assert_eq!(convnet::zoo::EfficientNetB0::OUTPUT_SHAPE, &[1000]);
}

#[test]
fn mobilenet_v3_large_matches_torchvision() {
    assert_eq!(convnet::zoo::MobileNetV3Large::TRAINABLE_PARAMS, 5_483_032);
    assert_eq!(convnet::zoo::MobileNetV3Large::INPUT_SHAPE, &[3, 224, 224]);
    assert_eq!(convnet::zoo::MobileNetV3Large::OUTPUT_SHAPE, &[1000]);
}

#[test]
fn densenet121_matches_torchvision() {
    use convnet::zoo::DenseNet121;
    assert_eq!(DenseNet121::TRAINABLE_PARAMS, 7_978_856);
    assert_eq!(DenseNet121::INPUT_SHAPE, &[3, 224, 224]);
    assert_eq!(DenseNet121::OUTPUT_SHAPE, &[1000]);
}

#[test]
fn googlenet_matches_torchvision() {
    use convnet::zoo::GoogLeNet;
    assert_eq!(GoogLeNet::TRAINABLE_PARAMS, 6_624_904);
    assert_eq!(GoogLeNet::INPUT_SHAPE, &[3, 224, 224]);
    assert_eq!(GoogLeNet::OUTPUT_SHAPE, &[1000]);
}

#[test]
fn unet_matches_milesial_formula() {
    use convnet::zoo::UNet;
    // DoubleConv(in, out): two bias-free 3x3 convs, each followed by a batch norm (2 x out trainable).
    let double_conv = |i: usize, o: usize| (9 * i * o + 2 * o) + (9 * o * o + 2 * o);
    // ConvTranspose2d(in, out, kernel 2, stride 2), with bias.
    let up = |i: usize, o: usize| 4 * i * o + o;
    let encoder = double_conv(3, 64)
        + double_conv(64, 128)
        + double_conv(128, 256)
        + double_conv(256, 512)
        + double_conv(512, 1024);
    let decoder = (up(1024, 512) + double_conv(1024, 512))
        + (up(512, 256) + double_conv(512, 256))
        + (up(256, 128) + double_conv(256, 128))
        + (up(128, 64) + double_conv(128, 64));
    let head = 64 * 2 + 2;
    assert_eq!(UNet::TRAINABLE_PARAMS, encoder + decoder + head);
    assert_eq!(UNet::INPUT_SHAPE, &[3, 256, 256]);
    assert_eq!(UNet::OUTPUT_SHAPE, &[2, 256, 256]);
}

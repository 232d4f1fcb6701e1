//! The `Conv2d` layer (dense and 1x1, strided and padded) against candle's `conv2d` plus bias.

mod common;

use candle_core::{DType, Device, Module};
use candle_nn::{VarBuilder, VarMap};
use common::{assert_close, tensor, values, Rng};
use convnet_runtime::layers::{conv2d, Conv2dOptions, Pad2d};

#[test]
fn conv2d_layers_match_candle_conv2d_plus_bias() {
    let mut rng = Rng::new(6);
    let dev = Device::Cpu;
    // (in, out, kernel, stride, padding): 1x1 strided, dense 3x3 padded.
    for (ci, co, k, stride, padding) in [(3, 4, 1, 2, 0), (3, 5, 3, 1, 1), (2, 3, 3, 2, 1)] {
        let vm = VarMap::new();
        let cfg = Conv2dOptions {
            stride,
            padding: Pad2d::uniform(padding),
            bias: true,
            ..Conv2dOptions::default()
        };
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let layer = conv2d(ci, co, (k, k), cfg, vb).unwrap();
        let x = tensor(&rng.vec(2 * ci * 8 * 8), &[2, ci, 8, 8], DType::F32).unwrap();
        let a = layer.forward(&x).unwrap();
        let b = x
            .conv2d(layer.weight(), padding, stride, 1, 1)
            .unwrap()
            .broadcast_add(&layer.bias().unwrap().reshape((1, co, 1, 1)).unwrap())
            .unwrap();
        assert_close(
            &values(&a),
            &values(&b),
            1e-5,
            1e-5,
            &format!("layer {k}x{k}/{stride}"),
        );
    }
}

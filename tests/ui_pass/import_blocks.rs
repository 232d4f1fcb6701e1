//! Blocks shared across invocations, modules and crates, with Rust's visibility: a `pub`
//! block used from another module and re-exported, a private block used by a child module,
//! a `pub(crate)` one, and the zoo's blocks from the `convnet` crate; blocks and layers as
//! block arguments.
use convnet::prelude::*;

mod blocks {
    use convnet::prelude::*;

    convnet! {
        /// Conv, norm, activation, with the norm and activation as arguments.
        pub block cna(c, norm = batch_norm, act = relu) { conv2d(c, 3, padding = same), norm, act }

        /// Private: usable in this module and its children.
        block twice(c) { cna(c), cna(c, act = none) }

        pub(crate) block stage(c) { twice(c), max_pool2d(2) }
    }

    pub mod child {
        use convnet::prelude::*;

        convnet! {
            use super::twice;
            pub Child(4, 8, 8) -> (4, 8, 8) { twice(4) }
        }
    }
}

// A Rust re-export of a block.
pub use blocks::cna as conv_block;

convnet! {
    use crate::blocks::{cna, stage};
    use crate::conv_block as cb;
    use convnet::zoo::{squeeze_excitation, resnext_bottleneck as bottleneck};

    pub Net(3, 16, 16) -> (10) {
        cna(16, act = hard_swish),
        stage(16),
        cb(32, norm = group_norm(4), act = { silu, dropout(0.1) }),
        squeeze_excitation(8, gate = hard_sigmoid),
        conv2d(64, 1),
        bottleneck(16),
        global_avg_pool2d,
        linear(10),
    }
}

fn main() {
    assert_eq!(Net::OUTPUT_SHAPE, &[10]);
    assert_eq!(blocks::child::Child::OUTPUT_SHAPE, &[4, 8, 8]);
    let varmap = VarMap::new();
    let net = Net::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let y = net.forward_t(&Tensor::zeros((2, 3, 16, 16), DType::F32, &Device::Cpu).unwrap(), false).unwrap();
    assert_eq!(y.dims(), &[2, 10]);
    let names = varmap.data().lock().unwrap();
    assert!(names.contains_key("cna1.conv1.weight"));
    assert!(names.contains_key("cb1.group_norm1.weight") || names.contains_key("cb1.gn1.weight"), "{:?}", names.keys().collect::<Vec<_>>());
    assert!(names.contains_key("squeeze_excitation1.fc2.weight"));
    assert!(names.contains_key("bottleneck1.conv3.weight"));
}

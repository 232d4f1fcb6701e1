//! `defaults { ... }` for a PyTorch port, and labelled (numeric) groups whose labels become
//! the parameter paths torchvision uses.
use convnet::prelude::*;

convnet! {
    defaults { batch_norm(eps = 1e-5, momentum = 0.1, variance = unbiased), conv2d(bias = false) }

    pub Features(3, 16, 16) -> (8, 8, 8) {
        features: {
            0: { 0: conv2d(8, 3, stride = 2, padding = 1), 1: batch_norm, 2: relu },
            1: { block: { 0: conv2d(8, 3, padding = 1), 1: batch_norm } },
        },
    }
}

fn main() {
    let varmap = VarMap::new();
    Features::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let names = varmap.data().lock().unwrap();
    assert!(names.contains_key("features.0.0.weight"));
    assert!(!names.contains_key("features.0.0.bias"));
    assert!(names.contains_key("features.1.block.1.running_var"), "{:?}", names.keys().collect::<Vec<_>>());
    // Two convs without bias, two batch norms (weight, bias and two moving statistics).
    assert_eq!(Features::TOTAL_PARAMS, 3 * 9 * 8 + 8 * 9 * 8 + 2 * 4 * 8);
}

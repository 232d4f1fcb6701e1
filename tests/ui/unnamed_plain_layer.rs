use convnet::prelude::*;

convnet! {
    pub Net(8, 16, 16) {
        features: sequential { conv2d(8, 3, padding = 1), _: batch_norm, relu },
    }
}

fn main() {}

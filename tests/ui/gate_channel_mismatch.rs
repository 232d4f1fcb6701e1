use convnet::prelude::*;

convnet! {
    pub Net(32, 8, 8) {
        se: multiply {
            identity,
            gate: { global_avg_pool2d(keepdims = true), conv2d(8, 1), relu, conv2d(16, 1), sigmoid },
        }
    }
}

fn main() {}

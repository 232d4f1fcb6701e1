use convnet::prelude::*;

convnet! {
    pub Net(8, 4, 4) {
        global_avg_pool2d(keepdims = true),
        reshape((2, 2, 3)),
    }
}

fn main() {}

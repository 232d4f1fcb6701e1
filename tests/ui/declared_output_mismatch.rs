use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) -> (10) {
        conv2d(8, 3), global_avg_pool2d,
        linear(1),
    }
}

fn main() {}

use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) {
        conv2d(16, padding = same, 3),
        max_pool2d(2, 2, same, 1),
    }
}

fn main() {}

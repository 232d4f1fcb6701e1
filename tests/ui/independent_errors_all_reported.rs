use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) {
        conv2d(8, 3, bias = maybe),
        max_pool2d(2, strid = 2),
        dropout(-0.1),
    }
}

fn main() {}

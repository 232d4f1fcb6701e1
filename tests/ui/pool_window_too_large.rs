use convnet::prelude::*;

convnet! {
    pub Net(3, 8, 8) {
        conv2d(8, 3, stride = 4),
        max_pool2d(3),
    }
}

fn main() {}

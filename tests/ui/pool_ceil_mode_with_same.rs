use convnet::prelude::*;

convnet! {
    pub Net(8, 15, 15) {
        max_pool2d(3, stride = 2, padding = same, ceil_mode = true),
    }
}

fn main() {}

use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        down1: conv2d(8, 3, padding = same),
        max_pool2d(2),
        conv2d(16, 3, padding = same),
        concat { identity, @down1 }
    }
}

fn main() {}

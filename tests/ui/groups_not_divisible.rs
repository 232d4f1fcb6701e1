use convnet::prelude::*;

convnet! {
    pub Net(30, 16, 16) {
        conv2d(64, 3, groups = 4),
    }
}

fn main() {}

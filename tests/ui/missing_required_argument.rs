use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        conv2d(8),
    }
}

fn main() {}

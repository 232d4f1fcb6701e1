use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) {
        conv2d(64, 3, stride = 2),
        linear(10),
    }
}

fn main() {}

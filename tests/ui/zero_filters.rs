use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        conv2d(0, 3),
    }
}

fn main() {}

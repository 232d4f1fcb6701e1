use convnet::prelude::*;

convnet! {
    pub Net(3, 8, 8) {
        flatten,
        conv2d(8, 3),
    }
}

fn main() {}

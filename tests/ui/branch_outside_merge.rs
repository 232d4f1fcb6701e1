use convnet::prelude::*;

convnet! {
    pub Net(8, 8, 8) {
        conv2d(8, 3),
        { relu, conv2d(8, 1) },
        identity,
    }
}

fn main() {}

use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        stem: conv2d(8, 3),
        stem: conv2d(8, 3),
    }
}

fn main() {}

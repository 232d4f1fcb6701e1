use convnet::prelude::*;

convnet! {
    pub Net(3, 5, 5) {
        conv2d(8, 7),
    }
}

fn main() {}

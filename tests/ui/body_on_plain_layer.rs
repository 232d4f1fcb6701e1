use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) {
        conv2d(16, 3) { relu }
    }
}

fn main() {}

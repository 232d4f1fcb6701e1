use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        conv2(8, 3),
        relu,
    }
}

fn main() {}

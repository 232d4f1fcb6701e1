use convnet::prelude::*;

convnet! {
    pub Net(3, 32) {
        relu,
    }

    pub Wide(3, 0, 32) {
        relu,
    }
}

fn main() {}

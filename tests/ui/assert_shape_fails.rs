use convnet::prelude::*;

convnet! {
    pub Net(3, 32, 32) {
        conv2d(16, 3),
        assert_shape(16, 32, 32),
        relu,
    }
}

fn main() {}

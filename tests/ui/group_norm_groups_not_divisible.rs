use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        conv2d(30, 3),
        group_norm(4),
    }
}

fn main() {}

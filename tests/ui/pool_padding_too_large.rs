use convnet::prelude::*;

convnet! {
    pub Net(8, 16, 16) {
        max_pool2d(2, padding = 2),
        avg_pool2d(3, padding = (1, 2, 0, 0)),
    }
}

fn main() {}

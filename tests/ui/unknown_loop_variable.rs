use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        for size in [8, 16] {
            conv2d(sise, 3, padding = same),
        }
    }
}

fn main() {}

use convnet::prelude::*;

convnet! {
    pub Net(16, 8, 8) {
        add { identity, { conv2d(32, 3, padding = same) } }
    }
}

fn main() {}

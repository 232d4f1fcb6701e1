use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        upsample2d(2, mode = same),
    }
}

fn main() {}

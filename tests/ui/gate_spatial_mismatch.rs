use convnet::prelude::*;

convnet! {
    pub Net(8, 8, 8) {
        multiply { identity, { max_pool2d(2), sigmoid } }
    }
}

fn main() {}

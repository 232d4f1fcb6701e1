use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        down1: conv2d(8, 3, padding = same),
        residual { inner: relu },
        concat { identity, @dwn1 }
        concat { identity, @inner }
    }
}

fn main() {}

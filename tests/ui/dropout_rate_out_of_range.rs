use convnet::prelude::*;

convnet! {
    pub Net(16) {
        dropout(1.5),
        linear(4),
    }
}

fn main() {}

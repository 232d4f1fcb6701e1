// `defaults` sets named arguments of built-in layers: a misspelt one is one error, on it.
use convnet::prelude::*;

convnet! {
    defaults { batch_norm(momentun = 0.1) }

    pub Net(8, 8, 8) {
        conv2d(8, 3), batch_norm, relu,
    }
}

fn main() {}

use convnet::prelude::*;

convnet! {
    pub Net(16, 32, 32) {
        residual(project = auto),
        relu,
    }
}

fn main() {}

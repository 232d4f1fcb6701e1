// A mistake inside an imported block is reported at the caller's use of it, with where in
// the block it arose; the block itself compiles where it is defined.
use convnet::prelude::*;

mod blocks {
    use convnet::prelude::*;

    convnet! {
        pub block squeeze(ch) { conv2d(ch, 3), conv2d(ch, 5) }
    }
}

convnet! {
    use crate::blocks::squeeze;

    pub Net(4, 6, 6) {
        squeeze(4),
    }
}

fn main() {}

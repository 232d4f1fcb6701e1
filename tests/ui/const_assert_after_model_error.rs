// A model with an error is one error: the user's compile-time checks of its consts (which
// the stand-in cannot satisfy) report nothing more (no E0080).
use convnet::prelude::*;

convnet! {
    pub Net(3, 8, 8) -> (10) {
        conv2d(8, 3, stride = 0), flatten, linear(10),
    }
}

const _: () = assert!(Net::TOTAL_PARAMS == 5_130);
convnet::assert_shapes!(Net: (3, 16, 16) -> (10));

fn main() {}

// A skip to a label defined later: the fix is the order, not an earlier label (which holds
// another activation, here of another shape).
use convnet::prelude::*;

convnet! {
    pub Net(3, 16, 16) {
        down1: conv2d(8, 3, padding = same),
        max_pool2d(2),
        concat { identity, @down2 }
        down2: conv2d(16, 3, padding = same),
    }
}

fn main() {}

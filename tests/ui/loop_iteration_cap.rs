use convnet::prelude::*;

// 10,000 x 10,000 iterations: stopped at the cap, at once, not after unrolling them all.
convnet! {
    pub Net(3, 8, 8) -> (3, 8, 8) {
        for i in 0..10000 {
            for j in 0..10000 { relu }
        }
    }
}

fn main() {}

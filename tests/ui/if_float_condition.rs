// A float `if` condition: one error for the loop (not one per value), and a fix that keeps
// a truth test's meaning.
use convnet::prelude::*;

convnet! {
    pub Net(8, 8, 8) {
        for rate in [0.0, 0.05, 0.1] {
            if rate { drop_path(rate) }
        }
    }
}

fn main() {}

use convnet::prelude::*;

convnet! {
    pub Net(3, 8, 8) {
        for i in 0..=9223372036854775807 { relu }
    }
}

fn main() {}

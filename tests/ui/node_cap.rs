use convnet::prelude::*;

convnet! {
    pub Net(3, 8, 8) -> (10) {
        for i in 0..20000 { relu, relu, relu, relu, relu, relu }
        flatten, linear(10),
    }
}

fn main() {}

//! Glob-importing the prelude leaves `std`'s two-parameter `Result` usable.

use convnet::prelude::*;

convnet! {
    pub Tiny(3, 8, 8) -> (2) { conv2d(4, 3), global_avg_pool2d, linear(2) }
}

fn parse(text: &str) -> Result<usize, std::num::ParseIntError> {
    text.parse()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    assert_eq!(parse("2")?, Tiny::OUTPUT_SHAPE[0]);
    Ok(())
}

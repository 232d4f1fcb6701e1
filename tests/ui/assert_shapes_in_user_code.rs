use convnet::assert_shapes;
use convnet::zoo::MiniXception;

assert_shapes!(MiniXception: (3, 180, 180) -> (2));

fn main() {}

pub mod cli;
pub mod randgraph;

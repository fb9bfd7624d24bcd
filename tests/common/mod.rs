pub mod cli;
pub mod graphs;
pub mod randgraph;
pub mod scans;

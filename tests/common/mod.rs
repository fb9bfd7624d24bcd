pub mod randgraph;

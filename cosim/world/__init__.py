"""What exists in simulated space-time: the engine, nodes, network and mobility."""

"""pytest plugin (entry point pytest11). PLACEHOLDER until the compiler work lands."""

"""Pure-Python pipeline model: steps, pipelines, the DAG and the step context. No I/O."""
